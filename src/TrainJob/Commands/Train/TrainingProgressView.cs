using System.Globalization;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>The engine's progress as bars (loading, features, a fine-tune's frozen prefix, epochs, the int8 check) and one line per finished epoch.</summary>
internal sealed class TrainingProgressView(IProgressSink sink, int epochs) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        switch (value.Phase)
        {
            case TrainingPhase.Loading:
                // Per-image "checking ..." messages would print a line per file: the bar says enough.
                sink.Report("loading", value.Current, Math.Max(1, value.Total));
                break;
            case TrainingPhase.Features:
                sink.Report("features", value.Current, Math.Max(1, value.Total));
                break;
            case TrainingPhase.FrozenPrefix:
                sink.Report("frozen prefix", value.Current, Math.Max(1, value.Total));
                break;
            case TrainingPhase.Quantization:
                sink.Report("int8 check", value.Current, Math.Max(1, value.Total));
                break;
            case TrainingPhase.Epoch:
                sink.Report("train", value.Epoch - 1 + ((double)value.Current / Math.Max(1, value.Total)), epochs);
                break;
            case TrainingPhase.EpochCompleted when value.Metrics is { } e:
                sink.Report("train", e.Epoch, epochs);
                sink.Line(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {e.Epoch}/{epochs}: train loss {e.TrainLoss:0.####} acc {e.TrainAccuracy:P1}; val loss {e.ValidationLoss:0.####} acc {e.ValidationAccuracy:P1}; lr {e.LearningRate:0.#####}; {e.ImagesPerSecond:F1} images/s"));
                break;
            case TrainingPhase.Info when value.Message is { } message:
                sink.Line(message);
                break;
            default:
                break;
        }
    }
}
