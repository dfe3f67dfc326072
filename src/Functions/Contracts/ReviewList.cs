namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// The review page's list: the cards, the labels to choose from, today's count against the daily bound, and who is
/// asking (what the page shows as signed in, and whether it offers approval).
/// </summary>
public sealed record ReviewList(IReadOnlyList<ReviewCard> Items, IReadOnlyList<string> Labels, bool More, int QueuedToday, int MaxPerDay, ReviewerSummary You);

/// <summary>A signed-in caller as the page shows them: name and roles.</summary>
public sealed record ReviewerSummary(string Name, IReadOnlyList<string> Roles);

/// <summary>The labels waiting for an Approver (at most 100, in id order).</summary>
public sealed record StagedList(IReadOnlyList<StagedCard> Items, bool More);

/// <summary>One staged label as the page shows it to an Approver.</summary>
public sealed record StagedCard(string Id, string Image, string ImageVersion, string Label, string SuggestedLabel, bool NewClass, string LabelledBy, DateTimeOffset LabelledUtc)
{
    /// <summary>The named model the label is for (its training data is the one an approval adds to); null for the default model.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Model { get; init; }

    /// <summary>A multi-label model's upload: the labels ticked (empty: none, a negative; <see cref="Label"/> is then them joined by ';'); absent otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>A multi-label model's upload: the labels its prediction listed; absent otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? SuggestedLabels { get; init; }
}
