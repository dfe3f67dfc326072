using Microsoft.Extensions.Logging;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>
/// The engine's logger in the CLI: warnings and errors go to stderr (secrets masked), always;
/// informational lines only with <c>--verbose</c>, since the progress display already shows them.
/// </summary>
public sealed class CliLogger<T>(CliContext context) : ILogger<T>
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning || (context.Verbose && logLevel >= LogLevel.Information);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        if (!IsEnabled(logLevel))
        {
            return;
        }
        var prefix = logLevel switch
        {
            LogLevel.Warning => "warning: ",
            >= LogLevel.Error => "error: ",
            _ => "",
        };
        context.Error(prefix + formatter(state, exception));
    }
}
