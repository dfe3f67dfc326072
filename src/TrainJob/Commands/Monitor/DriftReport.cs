namespace ServerlessClassifier.TrainJob.Commands.Monitor;

/// <summary>Uploads of one UTC day.</summary>
internal sealed record DayVolume(string Day, int Predictions, int Ok, int Rejected, int Unknown, int OutOfDistribution);

/// <summary>One label's share of the training images and of the uploads (by the model's top label).</summary>
internal sealed record ClassShare(string Label, double Training, double Uploads, int UploadCount);

/// <summary>A distribution summarised by its quantiles at 0, 5, ..., 100 %.</summary>
internal sealed record Distribution(IReadOnlyList<double> Quantiles, int Count)
{
    public double Median => Quantiles.Count == 21 ? Quantiles[10] : double.NaN;
}

/// <summary>
/// The uploads one model version classified. <see cref="Role"/> is <c>current</c> or <c>canary</c> for the versions the model's
/// <c>current.json</c> names, else null. <see cref="Reviewed"/> counts the review labels people gave to uploads this version listed
/// (approved or waiting; rejected ones and discards left out), and <see cref="ReviewAgreement"/> is the share of them equal to the
/// version's suggestion (null when none): agreement on the uploads it was unsure about, not its accuracy.
/// </summary>
internal sealed record VersionSummary(string Version, int Predictions, double UnknownShare, double OutOfDistributionShare, double RejectedShare, double MedianConfidence,
    DateTimeOffset First, DateTimeOffset Last, string? Role = null, int Reviewed = 0, double? ReviewAgreement = null);

/// <summary>A canary release's two versions side by side (the model's <c>current.json</c> names a canary).</summary>
internal sealed record CanaryComparison(int Traffic, VersionSummary Current, VersionSummary Canary);

/// <summary>One check of the report: what was compared, whether it drifted, and the line that says so.</summary>
internal sealed record DriftCheck(string Name, bool Drifted, string Line);

/// <summary>
/// <c>trainjob monitor</c>'s result (also its JSON): the uploads' predictions since a time against the live model's
/// training statistics.
/// </summary>
internal sealed record DriftReport
{
    public required DateTimeOffset Since { get; init; }
    public required DateTimeOffset Until { get; init; }

    /// <summary>The model whose predictions these are (<c>default</c>, or a named model's name).</summary>
    public string Model { get; init; } = ModelCore.Storage.ModelNames.Default;

    public required string? ReferenceVersion { get; init; }
    public required int Predictions { get; init; }
    public required int Ok { get; init; }
    public required int Rejected { get; init; }
    public required int Unknown { get; init; }
    public required int OutOfDistribution { get; init; }

    /// <summary>Predictions that carry an out-of-distribution score (made by a model with feature statistics).</summary>
    public required int Scored { get; init; }

    public required IReadOnlyList<DayVolume> Days { get; init; }
    public required IReadOnlyList<ClassShare> ClassMix { get; init; }
    public required Distribution? UploadConfidence { get; init; }
    public required Distribution? ValidationConfidence { get; init; }
    public required Distribution? UploadOutOfDistribution { get; init; }
    public required Distribution? TrainingOutOfDistribution { get; init; }

    /// <summary>Share of training images scored above the cut-off (out-of-fold): what in-distribution uploads should show.</summary>
    public required double? ExpectedOutOfDistributionShare { get; init; }

    public required IReadOnlyList<VersionSummary> Versions { get; init; }

    /// <summary>During a canary release: the current and canary versions side by side; null otherwise.</summary>
    public CanaryComparison? Canary { get; init; }
    public required IReadOnlyList<DriftCheck> Checks { get; init; }

    /// <summary>One line: "no drift detected ..." or the drifted checks' lines joined.</summary>
    public required string Verdict { get; init; }
}
