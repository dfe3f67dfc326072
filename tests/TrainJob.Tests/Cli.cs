using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>One CLI run's exit code and captured output.</summary>
public sealed record CliRun(int ExitCode, string Out, string Err)
{
    public string All => Out + Err;
}

/// <summary>
/// Runs the CLI in-process with redirected output against the test Azurite (passed as --storage) and
/// containers private to one test.
/// </summary>
public sealed class Cli
{
    private readonly string suffix = Guid.NewGuid().ToString("N")[..12];

    public string ModelsContainer => $"models-{suffix}";

    public string ImagesContainer => $"images-{suffix}";

    public string PredictionsContainer => $"predictions-{suffix}";

    public string TrainingContainer => $"training-{suffix}";

    public string JobsContainer => $"jobs-{suffix}";

    public string ShardQueue => $"shards-{suffix}";

    public string FeaturesContainer => $"features-{suffix}";

    public string ReviewContainer => $"review-{suffix}";

    public string NamedTrainingContainer => $"training-models-{suffix}";

    /// <summary>Called with every line the command writes to stdout, as it is written (e.g. to press Ctrl-C after an epoch).</summary>
    public Action<string>? OnOutputLine { get; init; }

    public async Task<CliRun> RunAsync(params string[] args) => await RunAsync(CancellationToken.None, args);

    public async Task<CliRun> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        using var output = new LineWatchingWriter(OnOutputLine);
        using var error = new StringWriter();
        var host = new CliHost
        {
            Interactive = false,
            Configuration = new Dictionary<string, string?>
            {
                ["Classifier:ModelsContainer"] = ModelsContainer,
                ["Classifier:ImagesContainer"] = ImagesContainer,
                ["Classifier:PredictionsContainer"] = PredictionsContainer,
                ["Classifier:TrainingContainer"] = TrainingContainer,
                ["Classifier:JobsContainer"] = JobsContainer,
                ["Classifier:ShardQueue"] = ShardQueue,
                ["Classifier:FeaturesContainer"] = FeaturesContainer,
                ["Classifier:ReviewContainer"] = ReviewContainer,
                ["Classifier:NamedTrainingContainer"] = NamedTrainingContainer,
            },
        };
        var code = await CliApp.RunAsync([.. args, "--storage", TestStorage.ConnectionString], output, error, host, cancellationToken);
        return new CliRun(code, output.ToString(), error.ToString());
    }
}

/// <summary>A <see cref="StringWriter"/> that hands each written line to a callback.</summary>
internal sealed class LineWatchingWriter(Action<string>? onLine) : StringWriter
{
    public override void WriteLine(string? value)
    {
        base.WriteLine(value);
        onLine?.Invoke(value ?? "");
    }
}
