namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>Where a strided convolution or pooling puts its padding.</summary>
public enum PaddingStyle
{
    /// <summary>torchvision: kernel/2 on every side.</summary>
    Symmetric,

    /// <summary>
    /// CNTK's "same" padding as in the ML.NET ResNet-18 ONNX export: a total of max(kernel - stride, 0)
    /// pixels per axis, the larger half at the top/left (ONNX pads [3,3,2,2] for the 7x7 stem,
    /// [1,1,0,0] for a 3x3 stride-2 convolution and the max-pool).
    /// </summary>
    TopLeft,
}
