using ServerlessClassifier.ModelCore.Backbones;

namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>How a fine-tune's head starts.</summary>
public enum HeadStart
{
    /// <summary>
    /// From a linear probe fitted on the training split's features of the pretrained backbone (LP-FT, Kumar et al. 2022:
    /// a random head's first gradients distort the pretrained features; a fitted one does not). The start is itself a
    /// candidate for the best epoch (epoch 0), so the fine-tune ends no worse than the probe on the validation loss.
    /// </summary>
    Probe,

    /// <summary>From a randomly initialised head.</summary>
    Random,
}

/// <summary>What the epoch loop compares epochs on (the start, epoch 0, included).</summary>
public enum EpochSelection
{
    /// <summary>
    /// The validation loss after each epoch's own temperature, fitted on the validation logits: the start is a calibrated
    /// probe and a trained head is over-confident, so the plain loss prefers the start even where an epoch classifies
    /// better; calibrating every candidate first compares what they can tell apart, not their confidence.
    /// </summary>
    CalibratedLoss,

    /// <summary>The plain validation loss (mean cross-entropy).</summary>
    Loss,
}

/// <summary>
/// The settings of the modes that train with epochs (<see cref="FinetunePlan"/>, <see cref="FullPlan"/>): AdamW with
/// decoupled weight decay, a cosine schedule from each group's peak rate to 0, label smoothing, random-resized-crop and
/// mirror augmentation, early stopping on the validation loss (the best epoch's weights are kept), a resume checkpoint
/// after every epoch.
/// </summary>
public abstract record EpochPlan : TrainingPlan
{
    /// <summary>Upper bound on epochs; early stopping usually ends sooner.</summary>
    [Setting("epochs")]
    public int Epochs { get; init; } = 10;

    [Setting("batch size")]
    public int BatchSize { get; init; } = 32;

    /// <summary>The head's peak learning rate; backbone stages learn at <see cref="BackboneLrFactor"/> times it.</summary>
    [Setting("learning rate")]
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Finetune: unfrozen stages learn at LearningRate x this. Full: the last stage does, each earlier one (and the stem) at half the next one's rate.</summary>
    [Setting("backbone learning-rate factor")]
    public double BackboneLrFactor { get; init; } = 0.1;

    /// <summary>AdamW's decoupled weight decay; 1e-4 is light regularisation that suits small sets.</summary>
    [Setting("weight decay")]
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Stop after this many epochs without a lower validation loss; 0: never stop early.</summary>
    [Setting("early-stopping patience")]
    public int Patience { get; init; } = 3;

    /// <summary>Label smoothing of the training loss (the validation loss stays plain cross-entropy).</summary>
    [Setting("label smoothing")]
    public double LabelSmoothing { get; init; } = 0.1;

    /// <summary>The random crop keeps at least this fraction of the image's area.</summary>
    [Setting("smallest crop (area)")]
    public double CropScaleMin { get; init; } = 0.6;

    /// <summary>False where mirroring changes the label (text, arrows, left/right): no mirrored augmentation.</summary>
    [Setting("mirror augmentation")]
    public bool MirrorAugmentation { get; init; } = true;

    /// <summary>
    /// BatchNorm layers of the trained stages use batch statistics and update their running statistics; false: they keep the
    /// pretrained ones (eval mode; their scale and shift still train). Null: false for a finetune, true for full mode. A
    /// finetune starts from a probe fitted on the pretrained statistics' features: on 144 training images one epoch at a
    /// learning rate of 1e-12 (no weight moved) took the training accuracy from 100 % to 71.5 % and the validation
    /// accuracy from 55.6 % to 44.4 % with updated statistics, and left both as they were with frozen ones.
    /// </summary>
    [Setting("update BatchNorm statistics")]
    public bool? UpdateBatchNormStatistics { get; init; }

    /// <summary>
    /// What epochs are compared on, for early stopping and the kept epoch. The plain loss by default: with BatchNorm
    /// statistics frozen the epochs' heads were no longer over-confident (their calibrated loss within 0.01 of their plain
    /// loss on style-shift), and calibrating every candidate helped the start most (1.148 -> 1.134), so the calibrated
    /// criterion kept the start where the plain loss kept epoch 3 (validation accuracy 66.0 % against 61.3 %); on the
    /// 144-image diagnosis it kept epochs the plain loss rejected and that scored lower on the test images.
    /// </summary>
    [Setting("epoch selection")]
    public EpochSelection Selection { get; init; } = EpochSelection.Loss;

    [Setting("head start")]
    public HeadStart Start { get; init; } = HeadStart.Probe;

    /// <summary>
    /// Weight averaging with a probe start (SWA, Izmailov et al. 2018; WiSE-FT, Wortsman et al. 2022): the trained weights
    /// (the unfrozen stages and the head) averaged uniformly over every epoch that ran, then interpolated with the start's,
    /// <c>start + alpha x (average - start)</c>; that one model is the candidate against the start instead of any single
    /// epoch. 1: the average itself. Null: off, the epochs are candidates one by one. With BatchNorm statistics frozen the
    /// interpolation touches only trained weights.
    /// </summary>
    [Setting("weight interpolation")]
    public double? WeightInterpolation { get; init; }

    /// <summary>
    /// With <see cref="WeightInterpolation"/>: the averaged model replaces the start only when its per-image validation loss
    /// is clearly below the start's (the margin every epoch must clear); false: it is kept whatever the validation split says.
    /// </summary>
    [Setting("averaged model needs the margin")]
    public bool AveragedModelNeedsMargin { get; init; } = true;

    /// <summary>Folds of the probe's cross-validation, where one is fitted (the head start, the refit).</summary>
    [Setting("probe folds")]
    public int Folds { get; init; } = 5;

    private protected override TrainingPlan ResolveMode(BackboneArchitecture architecture)
    {
        Require(Epochs >= 1, "epochs", $"Epochs {Epochs}: at least 1.");
        Require(BatchSize >= 1, "batch size", $"Batch size {BatchSize}: at least 1.");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), "learning rate", $"Learning rate {LearningRate}: must be positive.");
        Require(BackboneLrFactor > 0 && double.IsFinite(BackboneLrFactor), "backbone learning-rate factor", $"Backbone learning-rate factor {BackboneLrFactor}: must be positive.");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), "weight decay", $"Weight decay {WeightDecay}: 0 or more.");
        Require(Patience >= 0, "early-stopping patience", $"Early-stopping patience {Patience}: 0 or more.");
        Require(LabelSmoothing is >= 0 and < 1, "label smoothing", $"Label smoothing {LabelSmoothing}: in [0, 1).");
        Require(CropScaleMin is > 0 and <= 1, "smallest crop (area)", $"Smallest crop {CropScaleMin}: in (0, 1].");
        Require(Enum.IsDefined(Start), "head start", $"Head start {Start}: probe or random.");
        Require(Enum.IsDefined(Selection), "epoch selection", $"Epoch selection {Selection}: calibratedLoss or loss.");
        Require(Folds >= 2, "probe folds", $"Probe folds {Folds}: at least 2.");
        Require(WeightInterpolation is null || (WeightInterpolation > 0 && WeightInterpolation <= 1), "weight interpolation",
            $"Weight interpolation {WeightInterpolation}: in (0, 1] (1: the average of the epochs itself).");
        Require(WeightInterpolation is null || Start == HeadStart.Probe, "weight interpolation",
            "Weight interpolation: needs a probe start (interpolating towards a random head gives no useful model).");
        return (this with { UpdateBatchNormStatistics = UpdateBatchNormStatistics ?? Mode == TrainingMode.Full }).ResolveStages(architecture);
    }

    /// <summary>The finetune's stages and what follows from them; nothing for full mode.</summary>
    private protected abstract EpochPlan ResolveStages(BackboneArchitecture architecture);
}
