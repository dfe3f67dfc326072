using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>The two residual block kinds of torchvision's ResNet family.</summary>
public enum ResNetBlockKind
{
    Basic,
    Bottleneck,
}

/// <summary>A torchvision ResNet architecture: block kind and blocks per stage.</summary>
public sealed record ResNetArchitecture(string Name, ResNetBlockKind Block, IReadOnlyList<int> Layers)
{
    public static readonly ResNetArchitecture ResNet18 = new("resnet18", ResNetBlockKind.Basic, [2, 2, 2, 2]);
    public static readonly ResNetArchitecture ResNet34 = new("resnet34", ResNetBlockKind.Basic, [3, 4, 6, 3]);
    public static readonly ResNetArchitecture ResNet50 = new("resnet50", ResNetBlockKind.Bottleneck, [3, 4, 6, 3]);

    public static IReadOnlyList<ResNetArchitecture> All { get; } = [ResNet18, ResNet34, ResNet50];

    public int Expansion => Block == ResNetBlockKind.Basic ? 1 : 4;
}

/// <summary>
/// torchvision's ResNet (v1.5: stride on the 3x3 convolution of a bottleneck) without its <c>fc</c>
/// layer. Field names are torchvision's, so a torchvision <c>state_dict</c> loads by name.
/// </summary>
public sealed class TorchVisionResNet : Backbone
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
        conv1 = Conv2d(3, 64, kernel_size: 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(64);
        relu = ReLU(inplace: true);
        maxpool = MaxPool2d(kernel_size: 3, stride: 2, padding: 1);
        var inPlanes = 64;
        layer1 = MakeStage(architecture, ref inPlanes, 64, architecture.Layers[0], stride: 1);
        layer2 = MakeStage(architecture, ref inPlanes, 128, architecture.Layers[1], stride: 2);
        layer3 = MakeStage(architecture, ref inPlanes, 256, architecture.Layers[2], stride: 2);
        layer4 = MakeStage(architecture, ref inPlanes, 512, architecture.Layers[3], stride: 2);
        avgpool = AdaptiveAvgPool2d(1);
        NumFeatures = 512 * architecture.Expansion;
        RegisterComponents();
    }

    public ResNetArchitecture Architecture { get; }

    public override int NumFeatures { get; }

    public override IReadOnlyList<string> StageNames { get; } = ["layer1", "layer2", "layer3", "layer4"];

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = maxpool.call(relu.call(bn1.call(conv1.call(input))));
        x = layer4.call(layer3.call(layer2.call(layer1.call(x))));
        return avgpool.call(x).flatten(1).MoveToOuterDisposeScope();
    }

    private static Sequential MakeStage(ResNetArchitecture architecture, ref int inPlanes, int planes, int blocks, int stride)
    {
        var modules = new List<(string, Module<Tensor, Tensor>)>();
        for (var i = 0; i < blocks; i++)
        {
            var blockStride = i == 0 ? stride : 1;
            Module<Tensor, Tensor> block = architecture.Block == ResNetBlockKind.Basic
                ? new BasicBlock($"block{i}", inPlanes, planes, blockStride)
                : new Bottleneck($"block{i}", inPlanes, planes, blockStride);
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

        public BasicBlock(string name, int inPlanes, int planes, int stride) : base(name)
        {
            conv1 = Conv2d(inPlanes, planes, kernel_size: 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, kernel_size: 3, stride: 1, padding: 1, bias: false);
            bn2 = BatchNorm2d(planes);
            downsample = Downsample(inPlanes, planes, stride);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = functional.relu(bn1.call(conv1.call(input)));
            x = bn2.call(conv2.call(x));
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

        public Bottleneck(string name, int inPlanes, int planes, int stride) : base(name)
        {
            conv1 = Conv2d(inPlanes, planes, kernel_size: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, kernel_size: 3, stride: stride, padding: 1, bias: false);
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
            x = functional.relu(bn2.call(conv2.call(x)));
            x = bn3.call(conv3.call(x));
            var identity = downsample is null ? input : downsample.call(input);
            return functional.relu(x.add_(identity)).MoveToOuterDisposeScope();
        }
    }
}
