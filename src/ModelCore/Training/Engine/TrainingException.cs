namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>A run that cannot go on: a checkpoint made with another plan or data, or the serving engine disagreeing with TorchSharp.</summary>
public sealed class TrainingException : Exception
{
    public TrainingException(string message) : base(message)
    {
    }

    public TrainingException(string message, Exception inner) : base(message, inner)
    {
    }
}
