using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>
/// What a plan trains on, prepared once for a run (the pipeline's second stage): the frozen backbone's features
/// (<see cref="FeatureInputs"/>, head mode), the cached frozen prefix's outputs (<see cref="Prefix.PrefixInputs"/>), or
/// images decoded and augmented batch by batch (<see cref="ImageInputs"/>).
/// </summary>
internal interface ITrainingInputs : IDisposable
{
    /// <summary>The label of every training image that loaded: each class needs one.</summary>
    int[] TrainLabels { get; }

    /// <summary>
    /// The features of every image that loaded (training split, then validation split) under the classifier's backbone as
    /// it is now: for a fine-tune's head start (pretrained backbone), its refit and every model's out-of-distribution
    /// statistics (final backbone).
    /// </summary>
    Task<FeatureCache> FeaturesAsync(ImageClassifier model, CancellationToken cancellationToken);
}

/// <summary>The inputs of the modes that train with epochs: batches, and the network that takes them.</summary>
internal interface IEpochInputs : ITrainingInputs
{
    /// <summary>Training and validation batches, in the order of <see cref="TrainImages"/> and <see cref="ValidationImages"/>.</summary>
    IBatchSource Batches { get; }

    /// <summary>The training images that loaded.</summary>
    IReadOnlyList<LabeledImage> TrainImages { get; }

    /// <summary>The validation images that loaded.</summary>
    IReadOnlyList<LabeledImage> ValidationImages { get; }

    /// <summary>The network that takes <see cref="Batches"/>' inputs: the whole classifier, or the part after the cached prefix. Its <c>state_dict</c> is the classifier's.</summary>
    nn.Module<Tensor, Tensor> Network(ImageClassifier model);
}
