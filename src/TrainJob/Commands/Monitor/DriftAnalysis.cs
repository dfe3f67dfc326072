using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.OutOfDistribution;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.TrainJob.Commands.Monitor;

/// <summary>
/// Compares the uploads' prediction documents with the reference model's training statistics. Each check needs
/// at least <see cref="MinPredictions"/> predictions to judge, and flags drift only beyond a fixed margin:
/// <list type="bullet">
/// <item>class mix: total variation distance between the training mix and the uploads' top labels at least
/// <see cref="ClassMixDistance"/>; the line names the label that moved most;</item>
/// <item>out of distribution: the share above the cut-off at least twice the share the training images show
/// (5 %) and at least 3 standard errors above it;</item>
/// <item>confidence: the uploads' median top-1 confidence at least <see cref="ConfidenceDrop"/> below validation's;</item>
/// <item>rejected: over <see cref="RejectedShareLimit"/> of the uploads could not be read.</item>
/// </list>
/// </summary>
internal static class DriftAnalysis
{
    public const int MinPredictions = 30;
    public const double ClassMixDistance = 0.15;
    public const double ConfidenceDrop = 0.1;
    public const double RejectedShareLimit = 0.05;

    public static DriftReport Analyse(IReadOnlyList<PredictionDocument> documents, ModelManifest? reference, string? referenceVersion, DateTimeOffset since, DateTimeOffset until,
        IReadOnlyList<LabelRecord>? reviewLabels = null, CurrentModelPointer? pointer = null)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var ok = documents.Where(d => d.Status == PredictionStatus.Ok && d.Top is { Count: > 0 }).ToList();
        var scored = ok.Where(d => d.OutOfDistribution is not null).ToList();
        var days = documents.GroupBy(d => d.ClassifiedUtc.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new DayVolume(g.Key, g.Count(), g.Count(d => d.Status == PredictionStatus.Ok), g.Count(d => d.Status == PredictionStatus.Rejected),
                g.Count(d => d.IsUnknown == true), g.Count(d => d.OutOfDistribution > 1)))
            .ToList();

        var trainCounts = reference?.Training?.TrainCounts ?? new Dictionary<string, int>();
        var trainTotal = Math.Max(1, trainCounts.Values.Sum());
        var uploadCounts = ok.GroupBy(d => d.Top![0].Label, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var labels = (reference?.Labels ?? []).Concat(uploadCounts.Keys).Distinct(StringComparer.Ordinal).ToList();
        var mix = labels.Select(l => new ClassShare(l, trainCounts.GetValueOrDefault(l) / (double)trainTotal, ok.Count == 0 ? 0 : uploadCounts.GetValueOrDefault(l) / (double)ok.Count, uploadCounts.GetValueOrDefault(l))).ToList();

        var uploadConfidence = ok.Count == 0 ? null : Summarise(ok.Select(d => d.Confidence ?? d.Top![0].Probability));
        var validationConfidence = reference?.Metrics?.ConfidenceQuantiles is { Count: 21 } vq ? new Distribution(vq, reference.Metrics.Samples ?? 0) : null;
        var uploadOod = scored.Count == 0 ? null : Summarise(scored.Select(d => d.OutOfDistribution!.Value));
        var trainingOod = reference?.OutOfDistribution is { ScoreQuantiles.Count: 21 } spec ? new Distribution(spec.ScoreQuantiles, spec.Images) : null;
        var expectedOod = reference?.OutOfDistribution?.ExceedShare;

        // People's labels of the uploads each version listed for review: rejected labels and discards say nothing of the suggestion.
        var reviewed = (reviewLabels ?? []).Where(r => r.Label is not null && r.ModelVersion is not null && r.Decision is null or LabelDecisions.Approved)
            .GroupBy(r => r.ModelVersion!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (Count: g.Count(), Agree: g.Count(r => r.Label == r.SuggestedLabel)), StringComparer.Ordinal);
        var versions = documents.GroupBy(d => d.ModelVersion ?? "(none)", StringComparer.Ordinal)
            .Select(g =>
            {
                var gOk = g.Where(d => d.Status == PredictionStatus.Ok).ToList();
                var (count, agree) = reviewed.GetValueOrDefault(g.Key);
                var role = g.Key == pointer?.Version ? "current" : g.Key == pointer?.Canary?.Version ? "canary" : null;
                return new VersionSummary(g.Key, g.Count(), Share(gOk.Count(d => d.IsUnknown == true), gOk.Count), Share(gOk.Count(d => d.OutOfDistribution > 1), gOk.Count(d => d.OutOfDistribution is not null)),
                    Share(g.Count(d => d.Status == PredictionStatus.Rejected), g.Count()), gOk.Count == 0 ? double.NaN : Summarise(gOk.Select(d => d.Confidence ?? 0)).Median,
                    g.Min(d => d.ClassifiedUtc), g.Max(d => d.ClassifiedUtc), role, count, count == 0 ? null : agree / (double)count);
            })
            .OrderBy(v => v.First).ToList();
        CanaryComparison? canary = null;
        if (pointer?.Canary is { } release)
        {
            // A version with no prediction in the window still shows, with zeros, so the comparison is always two-sided.
            VersionSummary Of(string version, string role) => versions.FirstOrDefault(v => v.Version == version)
                ?? new VersionSummary(version, 0, 0, 0, 0, double.NaN, until, until, role, reviewed.GetValueOrDefault(version).Count,
                    reviewed.GetValueOrDefault(version).Count == 0 ? null : reviewed[version].Agree / (double)reviewed[version].Count);
            canary = new CanaryComparison(release.Traffic, Of(pointer.Version, "current"), Of(release.Version, "canary"));
        }

        var checks = new List<DriftCheck>();
        if (documents.Count < MinPredictions)
        {
            checks.Add(new DriftCheck("volume", false, $"too few predictions ({documents.Count}, at least {MinPredictions} are needed) to judge drift"));
        }
        else
        {
            if (reference is not null && trainCounts.Count > 0 && ok.Count >= MinPredictions)
            {
                var distance = mix.Sum(m => Math.Abs(m.Training - m.Uploads)) / 2;
                var moved = mix.OrderByDescending(m => Math.Abs(m.Training - m.Uploads)).First();
                checks.Add(new DriftCheck("classMix", distance >= ClassMixDistance, string.Create(CultureInfo.InvariantCulture,
                    $"class mix {(distance >= ClassMixDistance ? "drifted" : "steady")}: {moved.Label} {moved.Training * 100:0} % -> {moved.Uploads * 100:0} % (total variation {distance:0.00})")));
            }
            if (expectedOod is { } expected && scored.Count >= MinPredictions)
            {
                var share = Share(scored.Count(d => d.OutOfDistribution > 1), scored.Count);
                var standardError = Math.Sqrt(expected * (1 - expected) / scored.Count);
                var drifted = share >= 2 * expected && share - expected >= 3 * standardError;
                checks.Add(new DriftCheck("outOfDistribution", drifted, string.Create(CultureInfo.InvariantCulture,
                    $"out-of-distribution share {(drifted ? "drifted" : "steady")}: {expected * 100:0} % of training images -> {share * 100:0} % of uploads")));
            }
            if (validationConfidence is not null && uploadConfidence is not null && ok.Count >= MinPredictions)
            {
                var drop = validationConfidence.Median - uploadConfidence.Median;
                checks.Add(new DriftCheck("confidence", drop >= ConfidenceDrop, string.Create(CultureInfo.InvariantCulture,
                    $"confidence {(drop >= ConfidenceDrop ? "dropped" : "steady")}: median {validationConfidence.Median:0.00} on validation -> {uploadConfidence.Median:0.00} on uploads")));
            }
            var rejected = Share(documents.Count(d => d.Status == PredictionStatus.Rejected), documents.Count);
            checks.Add(new DriftCheck("rejected", rejected > RejectedShareLimit, string.Create(CultureInfo.InvariantCulture,
                $"rejected uploads {(rejected > RejectedShareLimit ? "high" : "few")}: {rejected * 100:0.#} %")));
        }
        var drifts = checks.Where(c => c.Drifted).ToList();
        var verdict = documents.Count < MinPredictions
            ? checks[0].Line
            : drifts.Count == 0 ? $"no drift detected in {documents.Count} predictions ({string.Join("; ", checks.Select(c => c.Line))})" : string.Join("; ", drifts.Select(c => c.Line));
        return new DriftReport
        {
            Since = since,
            Until = until,
            ReferenceVersion = referenceVersion,
            Predictions = documents.Count,
            Ok = ok.Count,
            Rejected = documents.Count(d => d.Status == PredictionStatus.Rejected),
            Unknown = ok.Count(d => d.IsUnknown == true),
            OutOfDistribution = scored.Count(d => d.OutOfDistribution > 1),
            Scored = scored.Count,
            Days = days,
            ClassMix = mix,
            UploadConfidence = uploadConfidence,
            ValidationConfidence = validationConfidence,
            UploadOutOfDistribution = uploadOod,
            TrainingOutOfDistribution = trainingOod,
            ExpectedOutOfDistributionShare = expectedOod,
            Versions = versions,
            Canary = canary,
            Checks = checks,
            Verdict = verdict,
        };
    }

    private static double Share(int part, int whole) => whole == 0 ? 0 : part / (double)whole;

    private static Distribution Summarise(IEnumerable<double> values)
    {
        var all = values.ToArray();
        return new Distribution([.. Enumerable.Range(0, 21).Select(q => Math.Round(FeatureStatisticsFit.Quantile(all, q / 20.0), 4))], all.Length);
    }
}
