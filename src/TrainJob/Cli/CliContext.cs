using System.CommandLine;
using Azure;
using Spectre.Console;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>What an in-process caller (tests, or another host) can change about a run.</summary>
public sealed record CliHost
{
    /// <summary>Configuration values applied over the environment (keys like <c>Classifier:ModelsContainer</c>).</summary>
    public IReadOnlyDictionary<string, string?>? Configuration { get; init; }

    /// <summary>Forces live progress bars on or off; null decides from the terminal.</summary>
    public bool? Interactive { get; init; }
}

/// <summary>The output, settings and services one command invocation uses.</summary>
public sealed class CliContext
{
    private CliContext(TextWriter output, TextWriter error, bool interactive, bool verbose, StorageSettings storage)
    {
        Out = output;
        Err = error;
        Interactive = interactive;
        Verbose = verbose;
        Storage = storage;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        if (!interactive)
        {
            // Redirected output is read by scripts and people with wide editors: never wrap table cells.
            Console.Profile.Width = 240;
        }
    }

    public TextWriter Out { get; }

    public TextWriter Err { get; }

    /// <summary>Tables and live progress, on <see cref="Out"/>.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>Whether stdout is a terminal that can show live progress bars (else plain progress lines).</summary>
    public bool Interactive { get; }

    public bool Verbose { get; }

    public StorageSettings Storage { get; }

    public static CliContext Create(ParseResult parse, GlobalOptions global, CliHost host)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(global);
        ArgumentNullException.ThrowIfNull(host);
        var output = parse.InvocationConfiguration.Output;
        var error = parse.InvocationConfiguration.Error;
        var interactive = host.Interactive
            ?? (ReferenceEquals(output, System.Console.Out) && !System.Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null);
        var configuration = StorageSettings.BuildConfiguration(parse.GetValue(global.Storage), host.Configuration);
        return new CliContext(output, error, interactive, parse.GetValue(global.Verbose), new StorageSettings(configuration));
    }

    /// <summary>Writes a line to stdout with any secret masked.</summary>
    public void WriteLine(string text) => Out.WriteLine(Mask(text));

    /// <summary>Writes a line to stderr with any secret masked.</summary>
    public void Error(string text) => Err.WriteLine(Mask(text));

    public string Mask(string text) => SecretMasker.Apply(text, Storage.Secrets);

    /// <summary>The one-line description of a failure (the full exception with <c>--verbose</c>).</summary>
    public string Describe(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (Verbose)
        {
            return exception.ToString();
        }
        var message = exception switch
        {
            RequestFailedException r => $"storage request failed ({r.Status}{(r.ErrorCode is { } code ? $" {code}" : "")}): {FirstLine(r.Message)}",
            AggregateException { InnerException: { } inner } => inner.Message,
            _ => exception.Message,
        };
        return $"error: {FirstLine(message)}";
    }

    private static string FirstLine(string text)
    {
        var line = text.AsSpan().Trim();
        var end = line.IndexOfAny('\r', '\n');
        return (end < 0 ? line : line[..end]).ToString();
    }
}

/// <summary>Options every command accepts (one set per root command).</summary>
public sealed class GlobalOptions
{
    public Option<string?> Storage { get; } = new("--storage")
    {
        Description = "Storage connection string (default: the ClassifierStorage setting or environment variable; " +
            "ClassifierStorage__blobServiceUri selects managed identity). Never printed.",
        Recursive = true,
        HelpName = "connection string",
    };

    public Option<bool> Verbose { get; } = new("--verbose")
    {
        Description = "Print full error details (stack traces).",
        Recursive = true,
    };
}
