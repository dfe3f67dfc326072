using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// One loaded model version: its pipeline and a reference count. The provider holds one reference while
/// the version is live; every user holds one through a <see cref="ModelLease"/>. The pipeline (the ONNX
/// Runtime session) is disposed when the count reaches zero, i.e. after the version was replaced AND the
/// last request using it finished, never under a running forward pass.
/// </summary>
public sealed class LoadedModel
{
    private int references = 1;

    internal LoadedModel(string version, ClassificationPipeline pipeline, DateTimeOffset loadedUtc)
    {
        Version = version;
        Pipeline = pipeline;
        LoadedUtc = loadedUtc;
    }

    public string Version { get; }

    public ClassificationPipeline Pipeline { get; }

    public ModelManifest Manifest => Pipeline.Manifest;

    public DateTimeOffset LoadedUtc { get; }

    /// <summary>
    /// How many times its serving files' bytes a loaded version is counted as holding. From docs/benchmarks.md
    /// ("7. memory"): creating the session of the fp32 ResNet-18 (a 45 MB graph) raised the serving process's RSS by
    /// 255 MB (5.7x), of the int8 one (12 MB) by 58 MB (about 5x); ONNX Runtime's optimised graph, its arenas and the
    /// warm-up are most of it.
    /// </summary>
    public const int EstimatedBytesPerFileByte = 6;

    /// <summary>
    /// The memory this version is counted as holding against the model memory budget: <see cref="EstimatedBytesPerFileByte"/>
    /// times the bytes of its serving files (the ONNX graph this CPU serves, any mean image or OOD statistics). An estimate, not a measurement.
    /// </summary>
    public long EstimatedBytes => EstimatedBytesPerFileByte * Manifest.Files
        .Where(f => f.Role is not (ModelFileRoles.Onnx or ModelFileRoles.PortableOnnx) ? ModelPackage.ServingRoles.Contains(f.Role) : f.Name == Served.File.Name)
        .Sum(f => f.Bytes);

    /// <summary>The graph that runs (the pipeline's, or the manifest's choice for this CPU).</summary>
    private ServedGraph Served => Pipeline.ServedGraph ?? ServedGraph.Choose(Manifest, CpuFeatures.ServingHasInt8DotProduct);

    /// <summary>Whether a request holds this version now (a reference besides the provider's).</summary>
    internal bool InUse => Volatile.Read(ref references) > 1;

    /// <summary>True once the pipeline has been disposed (for tests and diagnostics).</summary>
    public bool IsDisposed => Volatile.Read(ref references) == 0;

    /// <summary>Takes a reference unless the count already reached zero (the pipeline is gone).</summary>
    internal bool TryAddReference()
    {
        while (true)
        {
            var current = Volatile.Read(ref references);
            if (current == 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Takes a reference when the caller already holds one (so the count cannot be zero).</summary>
    internal void AddReference()
    {
        if (!TryAddReference())
        {
            throw new InvalidOperationException($"Model {Version} was used after it was released.");
        }
    }

    internal void Release()
    {
        var left = Interlocked.Decrement(ref references);
        if (left == 0)
        {
            Pipeline.Dispose();
        }
        else if (left < 0)
        {
            throw new InvalidOperationException($"Model {Version} was released more often than acquired.");
        }
    }
}
