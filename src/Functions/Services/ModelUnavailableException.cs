namespace ServerlessClassifier.Functions.Services;

/// <summary>No model can be served: none is published yet, or the published one was refused. HTTP 503.</summary>
public sealed class ModelUnavailableException(string message, TimeSpan retryAfter) : Exception(message)
{
    /// <summary>When asking again may help (the refresh interval).</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}
