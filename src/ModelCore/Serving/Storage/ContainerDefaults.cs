namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Default container names of the settings contract <c>Classifier__{Images,Predictions,Models,Training}Container</c>,
/// shared by the Functions app and TrainJob (infra/ deploys the same names).
/// </summary>
public static class ContainerDefaults
{
    /// <summary>The configuration section the container settings live in.</summary>
    public const string SectionName = "Classifier";

    public const string Images = "images";
    public const string Predictions = "predictions";
    public const string Models = "models";
    public const string Training = "training";
}
