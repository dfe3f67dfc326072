using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>
/// The images of a split that decoded, in dataset order, with their label indices: references, not pixels, so it
/// grows by a few bytes per image; the pixels live in one batch at a time (<see cref="ImageLoader.LoadAsync{T}"/>).
/// </summary>
internal sealed class LoadedSplit
{
    public List<LabeledImage> Images { get; } = [];
    public List<int> Labels { get; } = [];
    public List<string> Sources { get; } = [];

    public int Count => Images.Count;

    public void Add(LabeledImage image, int label)
    {
        Images.Add(image);
        Labels.Add(label);
        Sources.Add(image.Source);
    }
}
