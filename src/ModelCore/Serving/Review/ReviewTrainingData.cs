using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// Where an approved label's image goes, by the model whose prediction listed it (docs/architecture.md, "Review labels
/// per model"): the default model's into the training container as ever (<c>&lt;label&gt;/&lt;file&gt;</c>); a named
/// model's into the named-models training container under its own name (<c>&lt;model&gt;/&lt;label&gt;/&lt;file&gt;</c>,
/// trained with <c>--data &lt;container&gt;/&lt;model&gt;</c>). So one model's labels never enter the training data of
/// the default model or of another named model.
/// </summary>
public sealed class ReviewTrainingData(TrainingImages defaultModel, BlobContainerClient? namedModels)
{
    /// <summary>Default name of the named models' training container (<c>Classifier__NamedTrainingContainer</c>).</summary>
    public const string DefaultNamedContainer = "training-models";

    /// <summary>The default model's training data.</summary>
    public TrainingImages Default { get; } = defaultModel ?? throw new ArgumentNullException(nameof(defaultModel));

    /// <summary>The training data of <paramref name="model"/> (null or <c>default</c>: the default model's).</summary>
    /// <exception cref="InvalidOperationException">A named model's label and no named models' training container.</exception>
    public TrainingImages For(string? model) => model is null || model == ModelNames.Default
        ? Default
        : TrainingImages.Blobs(namedModels ?? throw new InvalidOperationException($"Labels of model \"{model}\" need the named models' training container, and none is configured."),
            ModelNames.Validate(model));
}
