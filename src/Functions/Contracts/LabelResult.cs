namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// The answer to a label: what happened (a <c>LabelOutcome</c> name: <c>Staged</c>, <c>Discarded</c>), the label used,
/// whether it is a class the live model does not have, and the staged label's id (what an Approver approves).
/// </summary>
public sealed record LabelResult(string Outcome, string? Label, bool NewClass, string? Id)
{
    /// <summary>A multi-label model's upload: the labels staged (empty: none, a negative); absent otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Labels { get; init; }
}

/// <summary>The answer to an Approver's decision: what happened (an <c>ApprovalOutcome</c> name), the label, and where the image went in the training data.</summary>
public sealed record DecisionResult(string Outcome, string? Label, string? Image, string? TrainingName)
{
    /// <summary>A multi-label model's upload: the labels decided on (empty: none, a negative); absent otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Labels { get; init; }
}
