namespace ServerlessClassifier.Functions.Contracts;

/// <summary>The answer to a label: what happened (a <see cref="LabelOutcome"/> name) and the label used.</summary>
public sealed record LabelResult(string Outcome, string? Label);
