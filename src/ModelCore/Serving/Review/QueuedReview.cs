using Azure;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>A listed upload and the ETag of its item blob (for a conditional removal).</summary>
public sealed record QueuedReview(ReviewItem Item, ETag ETag);
