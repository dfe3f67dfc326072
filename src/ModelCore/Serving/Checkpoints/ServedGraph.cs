using System.Globalization;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// A model's second graph, for CPUs without 8-bit dot products (<see cref="ModelFileRoles.PortableOnnx"/>): when the served
/// int8 graph has 8-bit weights, ONNX Runtime's x86 kernels without VNNI add pairs of uint8 x int8 products into saturating
/// 16 bits, so that graph's answers there are not those its check measured. This one's are: a 7-bit int8 graph (its integer
/// results are the same on any x86 CPU) with its own passing check, or the fp32 graph (the verified export) when the 7-bit
/// graph did not pass (its failed check is then recorded here).
/// </summary>
/// <param name="File">The graph's file name, listed with role <see cref="ModelFileRoles.PortableOnnx"/>.</param>
/// <param name="Precision">int8 (7-bit weights) or fp32.</param>
/// <param name="Quantization">
/// The 7-bit graph's check: passing for an int8 graph, failing (the reason) for fp32; null for the fp32 graph of a head fitted
/// on the 8-bit graph's features (a 7-bit backbone would compute other features; the int8 check measured fp32's through the fold heads).
/// </param>
public sealed record PortableGraphSpec(string File, ModelPrecision Precision, QuantizationSummary? Quantization)
{
    internal void Validate(ModelManifest manifest, string source)
    {
        if (manifest.FindFile(ModelFileRoles.PortableOnnx)?.Name != File)
        {
            throw new ModelFormatException($"{source}: portableGraph names file {File}, which is not listed with role {ModelFileRoles.PortableOnnx}.");
        }
        if (manifest is not { Precision: ModelPrecision.Int8, Quantization: { Accepted: true, WeightBits: 8 } })
        {
            throw new ModelFormatException($"{source}: a portableGraph stands in for an int8 graph with 8-bit weights and a passing check; this model's served graph is not one.");
        }
        if (!Enum.IsDefined(Precision))
        {
            throw new ModelFormatException($"{source}: portableGraph's precision {Precision} is unknown.");
        }
        if (Precision == ModelPrecision.Int8 && Quantization is not { Accepted: true, WeightBits: 7 })
        {
            throw new ModelFormatException($"{source}: portableGraph is int8 but records no passing check of a graph with 7-bit weights; an int8 graph is served only after its check.");
        }
    }
}

/// <summary>
/// The graph a model serves on this CPU, and why: <c>model.onnx</c>, except that a CPU without 8-bit dot products serves
/// the model's <see cref="ModelManifest.PortableGraph"/> instead of an int8 graph with 8-bit weights.
/// </summary>
/// <param name="File">The graph's file entry.</param>
/// <param name="Precision">Its precision.</param>
/// <param name="WeightBits">Its weights' bits when it is int8 (null for fp32, or an int8 model made before they were recorded).</param>
/// <param name="Reason">Why this graph, in one phrase for logs and the CLI.</param>
/// <param name="Unchecked">
/// Whether its answers on this CPU may differ from those its check measured: an 8-bit int8 graph on a CPU without dot
/// products, in a model made before portable graphs existed (or trained with <c>--int8-weight-bits 8</c>).
/// </param>
public sealed record ServedGraph(ModelFileEntry File, ModelPrecision Precision, int? WeightBits, string Reason, bool Unchecked)
{
    /// <summary>"int8 (7-bit weights)", "fp32"...</summary>
    public string Description => Precision == ModelPrecision.Int8
        ? WeightBits is { } bits ? string.Create(CultureInfo.InvariantCulture, $"int8 ({bits}-bit weights)") : "int8"
        : "fp32";

    /// <summary>The graph <paramref name="manifest"/>'s model serves on a CPU with or without 8-bit dot products.</summary>
    /// <exception cref="ModelFormatException">The manifest lists no ONNX graph.</exception>
    public static ServedGraph Choose(ModelManifest manifest, bool int8DotProduct)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var onnx = manifest.FindFile(ModelFileRoles.Onnx) ?? throw new ModelFormatException($"The model has no {ModelFileRoles.Onnx} file.");
        var bits = manifest.Precision == ModelPrecision.Int8 ? manifest.Quantization?.WeightBits : null;
        if (manifest.Precision != ModelPrecision.Int8)
        {
            return new ServedGraph(onnx, ModelPrecision.Fp32, null, "the model's graph is fp32", false);
        }
        if (bits != 8)
        {
            return new ServedGraph(onnx, ModelPrecision.Int8, bits, bits == 7 ? "7-bit weights give the same answers on any x86 CPU" : "the model's int8 graph", false);
        }
        if (int8DotProduct)
        {
            return new ServedGraph(onnx, ModelPrecision.Int8, 8, "this CPU has 8-bit dot products (VNNI or Arm's), which 8-bit weights need", false);
        }
        if (manifest.PortableGraph is { } portable && manifest.FindFile(ModelFileRoles.PortableOnnx) is { } file)
        {
            return portable.Precision == ModelPrecision.Int8
                ? new ServedGraph(file, ModelPrecision.Int8, 7,
                    "this CPU has no 8-bit dot products (VNNI), where the 8-bit graph's integer sums can saturate; the 7-bit graph passed its own check", false)
                : new ServedGraph(file, ModelPrecision.Fp32, null,
                    "this CPU has no 8-bit dot products (VNNI), where the 8-bit graph's integer sums can saturate, and " +
                    (portable.Quantization is null ? "the head was fitted on the 8-bit graph's features" : "the 7-bit graph did not pass its check"), false);
        }
        return new ServedGraph(onnx, ModelPrecision.Int8, 8, "the model has only an 8-bit int8 graph, made for CPUs with 8-bit dot products (VNNI), which this one lacks", true);
    }
}
