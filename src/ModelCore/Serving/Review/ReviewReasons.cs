using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>Values of <see cref="ReviewItem.Reasons"/>: why an upload was listed for review.</summary>
public static class ReviewReasons
{
    /// <summary>The decision was <c>unknown</c> (low confidence, out of distribution, or both: the prediction's <c>unknownReason</c>).</summary>
    public const string Unknown = "unknown";

    /// <summary>The top two probabilities are closer than the review margin.</summary>
    public const string LowMargin = "lowMargin";

    /// <summary>The out-of-distribution score is above 1.</summary>
    public const string OutOfDistribution = "outOfDistribution";

    /// <summary>A multi-label model's: some label's probability is closer to its threshold than the review margin.</summary>
    public const string NearThreshold = "nearThreshold";

    /// <summary>
    /// The reasons an <c>ok</c> prediction is listed for (empty: it is not). A multi-class model's: unknown, out of
    /// distribution, top-2 margin below <paramref name="marginBelow"/>. A multi-label model's (its document has
    /// <c>labels</c>): out of distribution, or some label within <paramref name="marginBelow"/> of its threshold
    /// (<c>thresholdMargin</c>). Its sigmoids are independent, so two labels both sure make no close call, and an image with
    /// no label is a negative, not an unknown: only a label near its threshold is.
    /// </summary>
    public static IReadOnlyList<string> For(PredictionDocument prediction, double marginBelow)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        if (prediction.Status != PredictionStatus.Ok || prediction.Top is not { Count: > 0 } top)
        {
            return [];
        }
        var reasons = new List<string>();
        if (prediction.Labels is not null)
        {
            if (prediction.OutOfDistribution > 1)
            {
                reasons.Add(OutOfDistribution);
            }
            if (prediction.ThresholdMargin < marginBelow)
            {
                reasons.Add(NearThreshold);
            }
            return reasons;
        }
        if (prediction.IsUnknown == true)
        {
            reasons.Add(Unknown);
        }
        if (prediction.OutOfDistribution > 1)
        {
            reasons.Add(OutOfDistribution);
        }
        if (top.Count > 1 && top[0].Probability - top[1].Probability < marginBelow)
        {
            reasons.Add(LowMargin);
        }
        return reasons;
    }
}
