namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>An image to classify: the name it is reported by, and how to open it (a file, or a blob a manifest names).</summary>
public sealed record ImageInput(string Name, Func<CancellationToken, Task<Stream>> OpenAsync)
{
    public static ImageInput FromFile(string file) => new(file, _ => Task.FromResult<Stream>(File.OpenRead(file)));

    public static ImageInput FromFile(string name, string file) => new(name, _ => Task.FromResult<Stream>(File.OpenRead(file)));
}
