using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>What trains.</summary>
public enum TrainingMode
{
    /// <summary>The backbone is frozen (weights and BatchNorm statistics); features are computed once and only the head trains.</summary>
    Head,

    /// <summary>The stages named in <see cref="TrainingOptions.UnfreezeStages"/> and the head train; the other stages stay frozen.</summary>
    Finetune,

    /// <summary>Everything trains, with learning rates that shrink towards the input (discriminative rates).</summary>
    Full,
}

public enum OptimizerKind
{
    /// <summary>AdamW (decoupled weight decay).</summary>
    AdamW,

    /// <summary>SGD with momentum 0.9.</summary>
    Sgd,
}

/// <summary>
/// Settings of one training run. The defaults are the PyTorch transfer-learning recipe on a small
/// data set: a frozen ImageNet backbone and a linear head trained with AdamW at 1e-3.
/// </summary>
public sealed record TrainingOptions
{
    public TrainingMode Mode { get; init; } = TrainingMode.Head;

    /// <summary>
    /// Finetune only: the backbone stages that train, by name (the architecture's
    /// <c>BackboneArchitecture.StageNames</c>: ResNet <c>layer1</c>..<c>layer4</c>; VGG <c>block1</c>..<c>block5</c>
    /// and <c>classifier</c>; AlexNet <c>block1</c>..<c>block3</c> and <c>classifier</c>; DenseNet
    /// <c>denseblock1</c>..<c>4</c>); every other stage stays frozen. <see cref="LastStages"/> turns "the last N
    /// stages" into names. The default, <c>layer4</c>, is a ResNet's.
    /// </summary>
    public IReadOnlyList<string> UnfreezeStages { get; init; } = ["layer4"];

    /// <summary>
    /// Upper bound on epochs; early stopping usually ends sooner. 10 is enough for a head on frozen
    /// features (it converges in a few epochs) and a reasonable first fine-tuning run.
    /// </summary>
    public int Epochs { get; init; } = 10;

    public int BatchSize { get; init; } = 32;

    /// <summary>
    /// The head's learning rate (the peak of the cosine schedule), 1e-3 in every mode; unfrozen backbone
    /// stages learn at <see cref="BackboneLrFactor"/> times it.
    /// </summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>
    /// Finetune: unfrozen stages learn at LearningRate x this. Full: layer4 learns at LearningRate x this,
    /// each earlier stage (and the stem) at half the rate of the next.
    /// </summary>
    public double BackboneLrFactor { get; init; } = 0.1;

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;

    /// <summary>Decoupled weight decay for AdamW, L2 for SGD. 1e-4: light regularisation that suits small sets.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Seeds torch (head initialisation, dropout) and every shuffle, split and augmentation.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Validation fraction for the stratified split (ignored with train/ and val/ folders); see <see cref="DatasetOptions.ValSplit"/>.</summary>
    public double ValSplit { get; init; } = 0.2;

    /// <summary>Stop after this many epochs without a lower validation loss; the best epoch's weights are kept. 0 disables early stopping.</summary>
    public int Patience { get; init; } = 3;

    /// <summary><c>auto</c> (CUDA when <c>torch.cuda.is_available()</c>, else CPU), <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "auto";

    /// <summary>
    /// <c>onnx-resnet18</c> (the pretrained ImageNet default), the path of a torchvision <c>state_dict</c>
    /// (<c>.pth</c>/<c>.safetensors</c>) of any architecture in <c>BackboneCatalog</c> (detected from its keys
    /// and shapes), or <c>random:&lt;id&gt;</c> for an architecture with random weights (tests only: a plain
    /// architecture id is refused, so nobody trains on random weights by accident).
    /// </summary>
    public string Backbone { get; init; } = BackboneCatalog.DefaultId;

    /// <summary>Folder with ResNet18.onnx and ResNetPreprocess.onnx for <c>onnx-resnet18</c>; null: <see cref="OnnxResNetImporter.DefaultDirectory"/>.</summary>
    [JsonIgnore]
    public string? PretrainedDirectory { get; init; }

    public HeadKind HeadKind { get; init; } = HeadKind.Linear;

    /// <summary>Width of the MLP head's hidden layer.</summary>
    public int HiddenSize { get; init; } = 512;

    /// <summary>Dropout of the MLP head.</summary>
    public double Dropout { get; init; } = 0.2;

    /// <summary>
    /// Model input side; null: 224. <c>onnx-resnet18</c> only takes 224 (its mean image is 224 x 224); the
    /// torchvision architectures take any side from their <c>MinInputSize</c> (32; AlexNet 63).
    /// </summary>
    public int? InputSize { get; init; }

    /// <summary>Finetune/full augmentation: the random crop keeps this fraction of the area, at least (up to all of it).</summary>
    public double CropScaleMin { get; init; } = 0.6;

    /// <summary>
    /// Head mode with a linear head: fit the head as a linear probe (standardised features, L-BFGS logistic
    /// regression, L2 chosen by stratified cross-validation, temperature scaling, refit on every image).
    /// False: the epoch loop with <see cref="Optimizer"/> on the training split, as in finetune mode.
    /// </summary>
    public bool LinearProbe { get; init; } = true;

    /// <summary>Folds of the linear probe's cross-validation.</summary>
    public int ProbeFolds { get; init; } = 5;

    /// <summary>
    /// Linear probe: add the features of each horizontally flipped image as a training row (one more
    /// backbone pass). Off by default: on the accuracy benchmark's three sets it moved accuracy by +1.1,
    /// -0.4 and -1.1 points (docs/benchmarks-accuracy.md) while doubling the feature time. Never for data
    /// where mirroring changes the label (text, arrows).
    /// </summary>
    public bool FlipFeatures { get; init; }

    /// <summary>
    /// The head reads the pooled outputs of the last this-many backbone stages, concatenated, last stage first
    /// (2: layer4 and layer3, 768 features for ResNet-18), in every mode; the exported graph computes the same.
    /// ResNets only: the other architectures' heads read what the replaced layer read (VGG's and AlexNet's
    /// 4096 inputs of <c>classifier.6</c>), whatever this says.
    /// </summary>
    public int PooledStages { get; init; } = 2;

    /// <summary>
    /// Finetune and full with a linear head: before unfreezing, initialise the head from a linear probe
    /// fitted on the training split's features of the pretrained backbone (LP-FT, Kumar et al. 2022:
    /// a random head's first gradients distort the pretrained features; a fitted one does not). The start
    /// is itself a candidate for the best epoch (epoch 0), so the fine-tune ends no worse than the probe on
    /// the validation loss.
    /// </summary>
    public bool ProbeInitialisation { get; init; } = true;

    /// <summary>
    /// Finetune with a linear head on the cached prefix: after the epochs, the head is fitted again as head mode
    /// fits it (standardised features, L-BFGS, L2 by stratified cross-validation, temperature), on the kept
    /// backbone's features of EVERY image, the validation split included. The L2 strength, the temperature and
    /// the reported validation figures come from the validation images' out-of-fold predictions only (the
    /// backbone never trained on them); when epoch 0 was kept, the backbone is the pretrained one and every
    /// image counts, exactly as in head mode.
    /// </summary>
    public bool RefitHead { get; init; } = true;

    /// <summary>Finetune and full: label smoothing of the training loss (the validation loss stays plain cross-entropy).</summary>
    public double LabelSmoothing { get; init; } = 0.1;

    /// <summary>
    /// Finetune: fixed views of each training image whose frozen-prefix outputs are computed once (on ONNX
    /// Runtime) and cached on disk; view 0 is the image as served, the others are augmented (random-resized
    /// crop, mirror). Each epoch trains every image on one of its views, drawn at random. 0: no cache, the
    /// whole network runs on freshly augmented images every batch (as full mode always does).
    /// </summary>
    public int PrefixViews { get; init; } = 4;

    /// <summary>
    /// Finetune and full: BatchNorm layers of the unfrozen stages normalise with batch statistics and update
    /// their running statistics (train mode). False: they keep the pretrained running statistics (their
    /// scale and shift still train), as frozen stages always do.
    /// </summary>
    public bool UpdateBatchNormStatistics { get; init; } = true;

    /// <summary>
    /// False where mirroring changes the label (text, arrows, left/right): no mirrored augmentation in
    /// finetune and full, and <see cref="FlipFeatures"/> is refused.
    /// </summary>
    public bool MirrorAugmentation { get; init; } = true;

    /// <summary>Images decoded and run through the frozen backbone at a time (head mode).</summary>
    public int FeatureBatchSize { get; init; } = 32;

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentException($"Training option {name} = {value}: {rule}.", name);
            }
        }
        Require(Enum.IsDefined(Mode), nameof(Mode), Mode, "unknown mode");
        Require(Enum.IsDefined(Optimizer), nameof(Optimizer), Optimizer, "unknown optimizer");
        Require(Mode != TrainingMode.Finetune || UnfreezeStages.Count > 0, nameof(UnfreezeStages), "(none)", "finetune needs at least one stage to unfreeze");
        Require(UnfreezeStages.Distinct(StringComparer.Ordinal).Count() == UnfreezeStages.Count, nameof(UnfreezeStages), string.Join(",", UnfreezeStages), "names a stage twice");
        Require(Epochs >= 1, nameof(Epochs), Epochs, "must be at least 1");
        Require(BatchSize >= 1, nameof(BatchSize), BatchSize, "must be at least 1");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be positive");
        Require(BackboneLrFactor > 0 && double.IsFinite(BackboneLrFactor), nameof(BackboneLrFactor), BackboneLrFactor, "must be positive");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), nameof(WeightDecay), WeightDecay, "must be 0 or more");
        Require(ValSplit is > 0 and < 1, nameof(ValSplit), ValSplit, "must be between 0 and 1");
        Require(Patience >= 0, nameof(Patience), Patience, "must be 0 or more");
        Require(Device is "auto" or "cpu" or "cuda", nameof(Device), Device, "must be auto, cpu or cuda");
        Require(!string.IsNullOrWhiteSpace(Backbone), nameof(Backbone), Backbone, "must name a backbone id or a weights file");
        Require(HiddenSize >= 1, nameof(HiddenSize), HiddenSize, "must be at least 1");
        Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "must be in [0, 1)");
        Require(InputSize is null or >= 32, nameof(InputSize), InputSize!, "must be at least 32");
        Require(CropScaleMin is > 0 and <= 1, nameof(CropScaleMin), CropScaleMin, "must be in (0, 1]");
        Require(PooledStages is >= 1 and <= 4, nameof(PooledStages), PooledStages, "must be 1..4");
        Require(PrefixViews is >= 0 and <= 64, nameof(PrefixViews), PrefixViews, "must be 0..64");
        Require(!FlipFeatures || MirrorAugmentation, nameof(FlipFeatures), FlipFeatures, "mirror-image features contradict MirrorAugmentation = false (mirroring changes the label)");
        Require(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), LabelSmoothing, "must be in [0, 1)");
        Require(ProbeFolds >= 2, nameof(ProbeFolds), ProbeFolds, "must be at least 2");
        Require(FeatureBatchSize >= 1, nameof(FeatureBatchSize), FeatureBatchSize, "must be at least 1");
    }

    /// <summary>The last <paramref name="count"/> of <paramref name="stages"/> (in input-to-output order).</summary>
    public static IReadOnlyList<string> LastStages(IReadOnlyList<string> stages, int count)
    {
        ArgumentNullException.ThrowIfNull(stages);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, stages.Count);
        return [.. stages.Skip(stages.Count - count)];
    }

    /// <summary>The dataset settings these options imply (split fraction and seed).</summary>
    public DatasetOptions ToDatasetOptions() => new() { ValSplit = ValSplit, Seed = Seed };

    /// <summary>The head these options describe, for a given number of classes.</summary>
    public HeadSpec HeadSpec(int numClasses) => new(HeadKind, numClasses, HiddenSize, Dropout) { PooledStages = PooledStages };

    /// <summary>SHA-256 of every setting that changes the result (all but <see cref="Device"/>), to refuse resuming with different settings.</summary>
    public string Hash()
    {
        var json = JsonSerializer.Serialize(this with { Device = "" }, Checkpoints.ModelManifest.JsonOptions);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(json)));
    }
}
