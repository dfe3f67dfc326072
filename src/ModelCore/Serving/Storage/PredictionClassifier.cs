using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// What <see cref="PredictionUpdater"/> classifies with: one model version (named in every prediction it writes,
/// rejections included), the decoder whose limits bound the blob read, and the classification itself (the
/// Functions app's micro-batched service on a lease it holds, or a pipeline called directly).
/// </summary>
public sealed record PredictionClassifier(
    string? ModelVersion,
    ImageDecoder Decoder,
    Func<ReadOnlyMemory<byte>, CancellationToken, Task<Classification>> ClassifyAsync)
{
    /// <summary>The named model written in every prediction (<see cref="PredictionDocument.Model"/>); null for the default model.</summary>
    public string? Model { get; init; }
}
