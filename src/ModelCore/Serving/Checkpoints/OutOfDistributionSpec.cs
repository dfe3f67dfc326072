namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// Manifest <c>outOfDistribution</c>: how far an image's features may lie from every class before it is
/// reported as out of distribution (docs/model.md, "Out-of-distribution score"). The statistics themselves
/// (class means, the leading eigenvectors and eigenvalues of the shared within-class covariance) are the
/// float32 file <see cref="File"/>, listed among the manifest's files with its size and SHA-256; this section
/// holds their shape and the calibration. An image's score is its Mahalanobis distance to the nearest class
/// mean divided by <see cref="Cutoff"/>: above 1 it is out of distribution, which by construction is true of
/// <see cref="ExceedShare"/> of the training images, each scored by statistics fitted without it.
/// </summary>
public sealed record OutOfDistributionSpec
{
    /// <summary>The one method this build computes and reads.</summary>
    public const string MahalanobisLowRank = "mahalanobis-lowrank";

    /// <summary>Value of <see cref="Normalization"/>: features are scaled to unit length first.</summary>
    public const string UnitLength = "unitLength";

    /// <summary>Share of the training images (scored out-of-fold) whose distance exceeds the cut-off.</summary>
    public const double DefaultExceedShare = 0.05;

    public string Method { get; init; } = MahalanobisLowRank;

    /// <summary>The statistics file (role <see cref="ModelFileRoles.OutOfDistribution"/>).</summary>
    public required string File { get; init; }

    /// <summary><see cref="UnitLength"/>, or null: the features as the graph outputs them.</summary>
    public string? Normalization { get; init; }

    /// <summary>Width of the features (the graph's <c>features</c> output, which the head reads).</summary>
    public required int Features { get; init; }

    /// <summary>Leading eigenvectors of the within-class covariance kept; the rest share <see cref="ResidualVariance"/>.</summary>
    public required int Components { get; init; }

    /// <summary>The average variance of the directions outside the kept components.</summary>
    public required double ResidualVariance { get; init; }

    /// <summary>The Mahalanobis distance at which the score is 1.</summary>
    public required double Cutoff { get; init; }

    /// <summary>Share of the training images whose out-of-fold distance exceeds <see cref="Cutoff"/>.</summary>
    public double ExceedShare { get; init; } = DefaultExceedShare;

    /// <summary>Images the statistics were fitted on.</summary>
    public int Images { get; init; }

    /// <summary>Folds of the out-of-fold calibration (0: the images were scored by statistics that included them, too few for folds).</summary>
    public int Folds { get; init; }

    /// <summary>
    /// The out-of-fold scores of the training images at 0, 5, ..., 100 % (21 values): what in-distribution uploads
    /// look like, for <c>trainjob monitor</c>.
    /// </summary>
    public IReadOnlyList<double> ScoreQuantiles { get; init; } = [];
}
