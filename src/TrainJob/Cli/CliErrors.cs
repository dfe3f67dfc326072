namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>The command line asks for something that cannot be done as asked: exit code 2, with the message.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The process exit codes, documented in README.md.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The command failed; one line on stderr says why.</summary>
    public const int Failure = 1;

    /// <summary>The command line is wrong (unknown option, bad value, missing argument).</summary>
    public const int Usage = 2;

    /// <summary><c>classify</c> finished, but some inputs were rejected (each reported with its error code).</summary>
    public const int SomeInputsRejected = 3;

    /// <summary>Interrupted (Ctrl-C / SIGTERM), as shells report SIGINT.</summary>
    public const int Cancelled = 130;
}
