using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>
/// Full mode, and finetune where the frozen prefix cannot be cached: the whole network runs on every batch, decoded from
/// the images when it is asked for (<see cref="ImageBatches"/>), so memory holds one batch, not the data set.
/// </summary>
internal sealed class ImageInputs : IEpochInputs
{
    private readonly ImageBatches batches;
    private readonly ImageLoader loader;
    private readonly ImagePreprocessor preprocessor;
    private readonly int batchSize;

    private ImageInputs(ImageBatches batches, ImageLoader loader, ImagePreprocessor preprocessor, int batchSize, LoadedSplit train, LoadedSplit validation)
    {
        this.batches = batches;
        this.loader = loader;
        this.preprocessor = preprocessor;
        this.batchSize = batchSize;
        TrainImages = train.Images;
        ValidationImages = validation.Images;
    }

    public IBatchSource Batches => batches;

    public int[] TrainLabels => batches.TrainLabels;

    public IReadOnlyList<LabeledImage> TrainImages { get; }

    public IReadOnlyList<LabeledImage> ValidationImages { get; }

    public nn.Module<Tensor, Tensor> Network(ImageClassifier model) => model;

    /// <summary>One more pass over every image on the serving engine (parity-checked like head mode's features).</summary>
    public Task<FeatureCache> FeaturesAsync(ImageClassifier model, CancellationToken cancellationToken)
    {
        model.eval();
        // Its own skipped list: the first pass already reported the images that do not decode.
        var pass = new ImageLoader(loader.Dataset, loader.Decoder, loader.DecodeShorterSide, [], loader.Progress);
        return new FeatureExtraction(pass).ExtractFeaturesAsync(model, preprocessor, batchSize, cancellationToken);
    }

    public void Dispose() => batches.Dispose();

    /// <summary>
    /// A first pass finds the images that decode (and keeps a few validation inputs for the export's check); the batches
    /// decode them again when they are used, so no image stays in memory.
    /// </summary>
    public static async Task<ImageInputs> PrepareAsync(ImageLoader loader, ImagePreprocessor preprocessor, Augmentation augmentation, int batchSize, Device device,
        CancellationToken cancellationToken)
    {
        var dataset = loader.Dataset;
        var train = new LoadedSplit();
        var validation = new LoadedSplit();
        var verification = new List<float[]>();
        var total = dataset.Train.Count + dataset.Validation.Count;
        await loader.LoadAsync(dataset.Train, batchSize, TrainingPhase.Loading, 0, total, image => Augmentation.WorkingImage(image, preprocessor.Config), (_, _) => { }, train,
            cancellationToken).ConfigureAwait(false);
        await loader.LoadAsync(dataset.Validation, batchSize, TrainingPhase.Loading, dataset.Train.Count, total, preprocessor.Preprocess,
            (items, _) => verification.AddRange(items.Take(ImageLoader.VerificationImages - verification.Count)), validation, cancellationToken).ConfigureAwait(false);
        var batches = new ImageBatches(loader, train, validation, verification, augmentation, preprocessor, device, cancellationToken);
        return new ImageInputs(batches, loader, preprocessor, batchSize, train, validation);
    }
}
