namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>The published app under the real Functions host, as <see cref="FunctionsHostFixture"/>, with no model published.</summary>
public sealed class NoModelHostFixture() : FunctionsHostFixture(withModel: false);
