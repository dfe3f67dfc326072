using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Ood;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Packaging;

/// <summary>
/// The packaging stage every plan ends with: the fp32 ONNX graph exported and verified against the trained model
/// (<see cref="OnnxExport.ExportVerified"/>), the served precision chosen and, for int8, checked (<see cref="ServingGraphs"/>),
/// then the model folder written (<see cref="ModelCheckpoint.SaveForServing(ImageClassifier, ModelManifest, string, ServingGraph, float[], FeatureStatistics)"/>:
/// weights, graph, mean image, out-of-distribution statistics, and the manifest last). What it writes is what
/// <c>publish</c> publishes.
/// </summary>
internal static class Packager
{
    /// <param name="model">The trained classifier (CPU, eval mode).</param>
    /// <param name="draft">The manifest draft: everything but the files, precision and checks.</param>
    /// <param name="folder">The model folder.</param>
    /// <param name="verificationInputs">Preprocessed real images the export is verified on.</param>
    /// <param name="meanImage">The mean image the preprocessing names, or null.</param>
    /// <param name="statistics">The out-of-distribution statistics the draft's section describes (null when it has none: a multi-label model).</param>
    /// <param name="precision">The plan's precision settings.</param>
    /// <param name="seed">Seeds the int8 calibration sample.</param>
    /// <param name="trainImages">The images trained on: int8 calibration draws from them.</param>
    /// <param name="reference">The images the figures come from and the fp32 answers on them: the int8 check is judged against them.</param>
    /// <param name="calibration">The int8 calibration the feature pass collected, or null.</param>
    /// <param name="steps">Told the seconds of the export (with its parity check), the precision step (int8 build and check) and the save, when given.</param>
    /// <returns>The manifest as written.</returns>
    public static async Task<ModelManifest> PackAsync(ImageClassifier model, ModelManifest draft, string folder, IReadOnlyList<float[]> verificationInputs, float[]? meanImage,
        FeatureStatistics? statistics, PrecisionOptions precision, int seed, IReadOnlyList<LabeledImage> trainImages, HeldOutReference reference,
        IProgress<TrainingProgress>? progress, CancellationToken cancellationToken, ICollection<StepTime>? steps = null, FeaturePassCalibration? calibration = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var preprocessing = draft.Preprocessing;
        var export = OnnxExport.ExportVerified(model, preprocessing.InputSize, verificationInputs);
        steps?.Add(new StepTime("export and parity check", clock.Elapsed.TotalSeconds));
        clock.Restart();
        var graph = await ServingGraphs.CreateAsync(export.Onnx, draft.Labels, trainImages, reference, new ImagePreprocessor(preprocessing, meanImage), precision, seed, calibration, progress,
            cancellationToken).ConfigureAwait(false);
        steps?.Add(new StepTime("precision (int8 build and check)", clock.Elapsed.TotalSeconds));
        if (graph.Timings.Count > 0)
        {
            progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0,
                $"int8 step: {StepTime.List(graph.Timings)}."));
        }
        clock.Restart();
        var manifest = draft with { Verification = new ExportVerification(export.MaxAbsDifference, export.Samples, OnnxExport.DefaultTolerance) };
        var written = ModelCheckpoint.SaveForServing(model, manifest, folder, graph, meanImage, statistics);
        steps?.Add(new StepTime("save", clock.Elapsed.TotalSeconds));
        return written;
    }
}
