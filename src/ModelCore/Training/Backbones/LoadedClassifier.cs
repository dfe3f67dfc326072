using ServerlessClassifier.ModelCore.Models;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>A classifier built from a checkpoint, with the report of what was loaded.</summary>
public sealed record LoadedClassifier(ImageClassifier Model, WeightLoadReport Report);
