using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Services;

/// <summary>A request's hold on a model version; dispose it when the request no longer needs the model.</summary>
public sealed class ModelLease : IDisposable
{
    private LoadedModel? model;

    internal ModelLease(LoadedModel model) => this.model = model;

    public LoadedModel Model => model ?? throw new ObjectDisposedException(nameof(ModelLease));

    public string Version => Model.Version;

    public ClassificationPipeline Pipeline => Model.Pipeline;

    public void Dispose() => Interlocked.Exchange(ref model, null)?.Release();
}
