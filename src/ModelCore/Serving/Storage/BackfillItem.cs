namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Work found by <see cref="PredictionBackfill"/>: an image without a prediction (<see cref="Prediction"/> null),
/// an image whose prediction describes an older version of it, or a prediction whose image is gone
/// (<see cref="ImageExists"/> false).
/// </summary>
public sealed record BackfillItem(string Name, bool ImageExists, StoredPrediction? Prediction);
