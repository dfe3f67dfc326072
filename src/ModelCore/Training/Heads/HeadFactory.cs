namespace ServerlessClassifier.ModelCore.Heads;

/// <summary>Builds the TorchSharp head module a <see cref="HeadSpec"/> describes.</summary>
public static class HeadFactory
{
    public static ClassifierHead Create(this HeadSpec spec, int numFeatures)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Kind switch
        {
            HeadKind.Linear => new LinearHead(numFeatures, spec.NumClasses),
            _ => throw new InvalidOperationException($"Unknown head kind {spec.Kind}."),
        };
    }
}
