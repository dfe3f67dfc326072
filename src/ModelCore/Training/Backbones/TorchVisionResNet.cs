using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's ResNet (v1.5: stride on the 3x3 convolution of a bottleneck) without its <c>fc</c>
/// layer. Field names are torchvision's, so a torchvision <c>state_dict</c> loads by name. With
/// <see cref="PaddingStyle.TopLeft"/> the same module reproduces the ONNX ResNet-18's asymmetric padding
/// exactly: its convolutions then have no built-in padding and the input is padded explicitly.
/// </summary>
public sealed partial class TorchVisionResNet : Backbone
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu;
    private readonly MaxPool2d maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly AdaptiveAvgPool2d avgpool;

    public TorchVisionResNet(ResNetArchitecture architecture) : base(architecture.Name)
    {
        Architecture = architecture;
        conv1 = PaddedConv.Create(architecture, 3, 64, kernel: 7, stride: 2);
        bn1 = BatchNorm2d(64);
        relu = ReLU(inplace: true);
        maxpool = MaxPool2d(kernel_size: 3, stride: 2, padding: architecture.Padding == PaddingStyle.Symmetric ? 1 : 0);
        var inPlanes = 64;
        layer1 = MakeStage(architecture, ref inPlanes, 64, architecture.Layers[0], stride: 1);
        layer2 = MakeStage(architecture, ref inPlanes, 128, architecture.Layers[1], stride: 2);
        layer3 = MakeStage(architecture, ref inPlanes, 256, architecture.Layers[2], stride: 2);
        layer4 = MakeStage(architecture, ref inPlanes, 512, architecture.Layers[3], stride: 2);
        avgpool = AdaptiveAvgPool2d(1);
        RegisterComponents();
    }

    public override ResNetArchitecture Architecture { get; }

    public override int NumFeatures => Architecture.StageWidths.TakeLast(PooledStages).Sum();

    public override IReadOnlyList<BackbonePart> Parts() =>
    [
        new(null, conv1), new(null, bn1), new(null, relu), new(null, maxpool),
        new("layer1", layer1), new("layer2", layer2), new("layer3", layer3), new("layer4", layer4),
        new(null, avgpool),
    ];

    /// <summary>Images in, features out; a fine-tune with a cached frozen prefix trains <see cref="ForwardSuffix"/> instead (<c>Prefix.SuffixClassifier</c>).</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return ForwardSuffix(ForwardPrefix(input, 0), 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The stem and the first <paramref name="stages"/> stages (0: the stem only): the frozen prefix of a
    /// fine-tune whose first trainable stage is stage <paramref name="stages"/> (0-based).
    /// </summary>
    public Tensor ForwardPrefix(Tensor input, int stages)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stages);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(stages, StageNames.Count);
        using var scope = NewDisposeScope();
        var x = relu.call(bn1.call(conv1.call(PaddedConv.Pad(Architecture, input, 7, 2))));
        // After ReLU every value is >= 0, but pad with -inf anyway: ONNX MaxPool ignores padded cells.
        x = maxpool.call(PaddedConv.Pad(Architecture, x, 3, 2, double.NegativeInfinity));
        for (var s = 0; s < stages; s++)
        {
            x = Stage(s).call(x);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The rest of the network from the output of <see cref="ForwardPrefix"/>(input, <paramref name="start"/>):
    /// stages <paramref name="start"/>.. and the pooling. The prefix output counts as the output of stage
    /// <paramref name="start"/> - 1, so the pooled stages may reach one stage into the prefix, no further
    /// (see <see cref="SuffixCanPool"/>).
    /// </summary>
    public Tensor ForwardSuffix(Tensor prefixOutput, int start)
    {
        if (!SuffixCanPool(start))
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, $"pooling the last {PooledStages} stages needs stage outputs before the prefix output of stage {start - 1}.");
        }
        using var scope = NewDisposeScope();
        var outputs = new List<Tensor>();
        var x = prefixOutput;
        if (start > 0)
        {
            outputs.Add(x);
        }
        for (var s = start; s < StageNames.Count; s++)
        {
            x = Stage(s).call(x);
            outputs.Add(x);
        }
        // The pooled outputs of the last PooledStages stages, last stage first.
        var pooled = Enumerable.Reverse(outputs).Take(PooledStages).Select(o => avgpool.call(o).flatten(1)).ToArray();
        return (pooled.Length == 1 ? pooled[0] : cat(pooled, 1)).MoveToOuterDisposeScope();
    }

    /// <summary>True when <see cref="ForwardSuffix"/> from stage <paramref name="start"/> sees every stage output the head reads.</summary>
    public bool SuffixCanPool(int start) => start >= 0 && start <= StageNames.Count && PooledStages <= StageNames.Count - start + (start > 0 ? 1 : 0);

    private Sequential Stage(int index) => index switch
    {
        0 => layer1,
        1 => layer2,
        2 => layer3,
        3 => layer4,
        _ => throw new ArgumentOutOfRangeException(nameof(index), index, "ResNet has stages 0..3."),
    };

    private static Sequential MakeStage(ResNetArchitecture architecture, ref int inPlanes, int planes, int blocks, int stride)
    {
        var modules = new List<(string, Module<Tensor, Tensor>)>();
        for (var i = 0; i < blocks; i++)
        {
            var blockStride = i == 0 ? stride : 1;
            Module<Tensor, Tensor> block = architecture.Block == ResNetBlockKind.Basic
                ? new BasicBlock($"block{i}", architecture, inPlanes, planes, blockStride)
                : new Bottleneck($"block{i}", architecture, inPlanes, planes, blockStride);
            modules.Add((i.ToString(System.Globalization.CultureInfo.InvariantCulture), block));
            inPlanes = planes * architecture.Expansion;
        }
        return Sequential(modules);
    }

    /// <summary>The 1x1 projection on the shortcut when shape changes; torchvision names it <c>downsample</c> (keys 0 and 1).</summary>
    internal static Sequential? Downsample(int inPlanes, int outPlanes, int stride) =>
        stride == 1 && inPlanes == outPlanes
            ? null
            : Sequential(("0", Conv2d(inPlanes, outPlanes, kernel_size: 1, stride: stride, bias: false)), ("1", BatchNorm2d(outPlanes)));

    private sealed class BasicBlock : Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly BatchNorm2d bn1;
        private readonly Conv2d conv2;
        private readonly BatchNorm2d bn2;
        private readonly Sequential? downsample;
        private readonly ResNetArchitecture architecture;
        private readonly int stride;

        public BasicBlock(string name, ResNetArchitecture architecture, int inPlanes, int planes, int stride) : base(name)
        {
            this.architecture = architecture;
            this.stride = stride;
            conv1 = PaddedConv.Create(architecture, inPlanes, planes, kernel: 3, stride: stride);
            bn1 = BatchNorm2d(planes);
            conv2 = PaddedConv.Create(architecture, planes, planes, kernel: 3, stride: 1);
            bn2 = BatchNorm2d(planes);
            downsample = Downsample(inPlanes, planes, stride);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = functional.relu(bn1.call(conv1.call(PaddedConv.Pad(architecture, input, 3, stride))));
            x = bn2.call(conv2.call(PaddedConv.Pad(architecture, x, 3, 1)));
            var identity = downsample is null ? input : downsample.call(input);
            return functional.relu(x.add_(identity)).MoveToOuterDisposeScope();
        }
    }

    private sealed class Bottleneck : Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly BatchNorm2d bn1;
        private readonly Conv2d conv2;
        private readonly BatchNorm2d bn2;
        private readonly Conv2d conv3;
        private readonly BatchNorm2d bn3;
        private readonly Sequential? downsample;
        private readonly ResNetArchitecture architecture;
        private readonly int stride;

        public Bottleneck(string name, ResNetArchitecture architecture, int inPlanes, int planes, int stride) : base(name)
        {
            this.architecture = architecture;
            this.stride = stride;
            conv1 = Conv2d(inPlanes, planes, kernel_size: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = PaddedConv.Create(architecture, planes, planes, kernel: 3, stride: stride);
            bn2 = BatchNorm2d(planes);
            conv3 = Conv2d(planes, planes * 4, kernel_size: 1, bias: false);
            bn3 = BatchNorm2d(planes * 4);
            downsample = Downsample(inPlanes, planes * 4, stride);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = functional.relu(bn1.call(conv1.call(input)));
            x = functional.relu(bn2.call(conv2.call(PaddedConv.Pad(architecture, x, 3, stride))));
            x = bn3.call(conv3.call(x));
            var identity = downsample is null ? input : downsample.call(input);
            return functional.relu(x.add_(identity)).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Convolutions whose padding follows the architecture's <see cref="PaddingStyle"/>.</summary>
    private static class PaddedConv
    {
        public static Conv2d Create(ResNetArchitecture architecture, int inChannels, int outChannels, int kernel, int stride) =>
            Conv2d(inChannels, outChannels, kernel_size: kernel, stride: stride,
                padding: architecture.Padding == PaddingStyle.Symmetric ? kernel / 2 : 0, bias: false);

        /// <summary>Explicit padding for <see cref="PaddingStyle.TopLeft"/>; the input itself otherwise (the convolution pads).</summary>
        public static Tensor Pad(ResNetArchitecture architecture, Tensor input, int kernel, int stride, double value = 0)
        {
            if (architecture.Padding == PaddingStyle.Symmetric)
            {
                return input;
            }
            var (left, right, top, bottom) = architecture.PadsFor(kernel, stride);
            return functional.pad(input, [left, right, top, bottom], PaddingModes.Constant, value);
        }
    }
}
