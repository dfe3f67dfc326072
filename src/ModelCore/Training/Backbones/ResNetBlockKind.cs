namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>The two residual block kinds of torchvision's ResNet family.</summary>
public enum ResNetBlockKind
{
    Basic,
    Bottleneck,
}
