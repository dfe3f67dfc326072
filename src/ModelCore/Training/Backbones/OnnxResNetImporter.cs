using System.Runtime.InteropServices;
using Onnx;
using ServerlessClassifier.ModelCore.Imaging;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// Imports the ImageNet ResNet-18 that the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18
/// ships as ONNX (a CNTK export) into a <see cref="TorchVisionResNet"/> with
/// <see cref="ResNetArchitecture.OnnxResNet18"/>: convolution weights and BatchNorm scale, bias, mean
/// and variance are read from the graph's initializers with OnnxSharp, and every convolution's kernel,
/// stride and padding are checked against the module, so a graph of another shape is refused rather
/// than mis-loaded. Its preprocessing (BGR, 0..255, a per-pixel mean image) comes from the package's
/// ResNetPreprocess.onnx.
/// </summary>
public static class OnnxResNetImporter
{
    public const string ModelFileName = "ResNet18.onnx";
    public const string PreprocessFileName = "ResNetPreprocess.onnx";
    public const string MeanImageFileName = "mean_image.bin";

    /// <summary>Where the build copies the two files (Directory.Build.targets, UsesTorchNatives projects).</summary>
    public static string DefaultDirectory => Path.Combine(AppContext.BaseDirectory, "pretrained");

    /// <summary>
    /// The default backbone's preprocessing: shorter side to 224 then centre crop (no stretching), bilinear,
    /// BGR, 0..255, minus the mean image. The mean image is stored beside the weights as <see cref="MeanImageFileName"/>.
    /// </summary>
    public static PreprocessingConfig Preprocessing { get; } = new()
    {
        InputSize = 224,
        Resize = ResizeMode.ShorterSideThenCenterCrop,
        ResizeSize = 224,
        Interpolation = Interpolation.Bilinear,
        ChannelOrder = ChannelOrder.Bgr,
        Scale = 1f,
        Mean = [0f, 0f, 0f],
        Std = [1f, 1f, 1f],
        MeanImageFile = MeanImageFileName,
    };

    /// <summary>Builds the backbone and loads the graph's weights into it (on the CPU, in eval mode).</summary>
    public static TorchVisionResNet LoadBackbone(string onnxPath)
    {
        var graph = ReadGraph(onnxPath);
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var convs = graph.Node.Where(n => n.OpType == "Conv").ToList();
        var batchNormByInput = graph.Node.Where(n => n.OpType == "BatchNormalization").ToDictionary(n => n.Input[0], StringComparer.Ordinal);

        var architecture = ResNetArchitecture.OnnxResNet18;
        var backbone = new TorchVisionResNet(architecture);
        var state = backbone.state_dict();
        var layers = ConvLayerNames(state, architecture).ToList();
        if (layers.Count != convs.Count)
        {
            throw new InvalidDataException($"{onnxPath}: expected {layers.Count} convolutions for {architecture.Name}, the graph has {convs.Count}.");
        }
        CheckMaxPool(onnxPath, graph, architecture);

        using (no_grad())
        {
            for (var i = 0; i < layers.Count; i++)
            {
                var (convName, bnName) = layers[i];
                var conv = convs[i];
                var weight = initializers[conv.Input[1]];
                CheckConvolution(onnxPath, conv, weight, architecture, convName);
                Copy(state, $"{convName}.weight", weight, onnxPath);

                if (!batchNormByInput.TryGetValue(conv.Output[0], out var bn))
                {
                    throw new InvalidDataException($"{onnxPath}: convolution {conv.Output[0]} ({convName}) is not followed by BatchNormalization.");
                }
                var epsilon = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
                if (Math.Abs(epsilon - 1e-5f) > 1e-9f)
                {
                    throw new InvalidDataException($"{onnxPath}: BatchNormalization after {convName} has epsilon {epsilon}; the module uses 1e-5.");
                }
                Copy(state, $"{bnName}.weight", initializers[bn.Input[1]], onnxPath);
                Copy(state, $"{bnName}.bias", initializers[bn.Input[2]], onnxPath);
                Copy(state, $"{bnName}.running_mean", initializers[bn.Input[3]], onnxPath);
                Copy(state, $"{bnName}.running_var", initializers[bn.Input[4]], onnxPath);
            }
        }
        backbone.eval();
        return backbone;
    }

    /// <summary>Reads the 3 x 224 x 224 mean image (BGR, CHW) that ResNetPreprocess.onnx subtracts.</summary>
    public static float[] LoadMeanImage(string preprocessPath)
    {
        var graph = ReadGraph(preprocessPath);
        var mean = graph.Initializer.SingleOrDefault(t => t.Name == "MeanImage")
            ?? throw new InvalidDataException($"{preprocessPath}: no MeanImage initializer.");
        long[] expected = [1, 3, 224, 224];
        if (!mean.Dims.SequenceEqual(expected))
        {
            throw new InvalidDataException($"{preprocessPath}: MeanImage has shape [{string.Join(", ", mean.Dims)}], expected [1, 3, 224, 224].");
        }
        return ToFloats(mean, preprocessPath);
    }

    private static GraphProto ReadGraph(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Pretrained ONNX file not found: {path}. It is copied from the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 into pretrained/ by the build.", path);
        }
        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream).Graph;
    }

    /// <summary>(conv, bn) state-dict prefixes in the order the CNTK export lists its convolutions: stem, then per block the shortcut projection first.</summary>
    private static IEnumerable<(string Conv, string Bn)> ConvLayerNames(Dictionary<string, Tensor> state, ResNetArchitecture architecture)
    {
        yield return ("conv1", "bn1");
        for (var stage = 1; stage <= architecture.Layers.Count; stage++)
        {
            for (var block = 0; block < architecture.Layers[stage - 1]; block++)
            {
                var prefix = $"layer{stage}.{block}";
                if (state.ContainsKey($"{prefix}.downsample.0.weight"))
                {
                    yield return ($"{prefix}.downsample.0", $"{prefix}.downsample.1");
                }
                yield return ($"{prefix}.conv1", $"{prefix}.bn1");
                yield return ($"{prefix}.conv2", $"{prefix}.bn2");
            }
        }
    }

    private static void CheckConvolution(string path, NodeProto conv, TensorProto weight, ResNetArchitecture architecture, string name)
    {
        var kernel = (int)weight.Dims[^1];
        var strides = conv.Attribute.FirstOrDefault(a => a.Name == "strides")?.Ints.ToArray() ?? [1, 1];
        var pads = conv.Attribute.FirstOrDefault(a => a.Name == "pads")?.Ints.ToArray() ?? [0, 0, 0, 0];
        var group = conv.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;
        var (left, right, top, bottom) = architecture.PadsFor(kernel, (int)strides[0]);
        long[] expectedPads = [top, left, bottom, right];
        if (group != 1 || strides[0] != strides[1] || !pads.SequenceEqual(expectedPads) || conv.Input.Count > 2)
        {
            throw new InvalidDataException(
                $"{path}: convolution {conv.Output[0]} ({name}) has strides [{string.Join(",", strides)}], pads [{string.Join(",", pads)}], group {group}; " +
                $"the module expects pads [{string.Join(",", expectedPads)}], group 1 and no bias.");
        }
    }

    private static void CheckMaxPool(string path, GraphProto graph, ResNetArchitecture architecture)
    {
        var pool = graph.Node.Single(n => n.OpType == "MaxPool");
        var pads = pool.Attribute.FirstOrDefault(a => a.Name == "pads")?.Ints.ToArray() ?? [0, 0, 0, 0];
        var (left, right, top, bottom) = architecture.PadsFor(3, 2);
        if (!pads.SequenceEqual([top, left, bottom, right]))
        {
            throw new InvalidDataException($"{path}: MaxPool pads [{string.Join(",", pads)}] differ from the module's [{top},{left},{bottom},{right}].");
        }
    }

    private static void Copy(Dictionary<string, Tensor> state, string key, TensorProto source, string path)
    {
        var target = state.TryGetValue(key, out var t) ? t : throw new InvalidOperationException($"The module has no parameter {key}.");
        if (!source.Dims.SequenceEqual(target.shape))
        {
            throw new InvalidDataException($"{path}: {source.Name} has shape [{string.Join(", ", source.Dims)}] but {key} is [{string.Join(", ", target.shape)}].");
        }
        using var values = tensor(ToFloats(source, path), target.shape);
        target.copy_(values);
    }

    private static float[] ToFloats(TensorProto source, string path)
    {
        if (source.DataType != (int)TensorProto.Types.DataType.Float)
        {
            throw new InvalidDataException($"{path}: initializer {source.Name} has data type {source.DataType}; only float32 is supported.");
        }
        return source.RawData.Length > 0
            ? MemoryMarshal.Cast<byte, float>(source.RawData.Span).ToArray()
            : [.. source.FloatData];
    }
}
