using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Reports;
using Spectre.Console;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// <c>evaluate</c>: runs the serving pipeline (ONNX Runtime, exactly what production serves) over a labelled
/// folder and prints accuracy, per-class precision/recall/F1 and the confusion matrix. Accuracy is of the
/// top-1 label; images below the model's confidence threshold are counted separately.
/// </summary>
public static class EvaluateCommand
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var model = new Option<string>("--model") { Description = "A model folder, or a published version id (current = the live one).", Required = true, HelpName = "folder | version" };
        var data = new Option<string>("--data")
        {
            Description = "Labelled images: <folder>/<label>/<file>, or a manifest file as train reads (with TEST rows, only those are measured); labels must be labels of the model.",
            Required = true,
            HelpName = "folder | manifest",
        };
        var rewritePrefix = new Option<string[]>("--rewrite-prefix") { Description = "With a manifest: read references starting with FROM as TO + the rest (as in train). Repeatable.", HelpName = "FROM=TO" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON (accuracy, perClass, confusion, ...) to this file.", HelpName = "file" };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per inference call.", DefaultValueFactory = _ => 16 };
        batchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        var command = new Command("evaluate", "Measure a model on labelled images with the serving (ONNX) pipeline: accuracy, per-class precision/recall/F1, confusion matrix.")
        {
            model, data, rewritePrefix, json, batchSize,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = parse.GetRequiredValue(data);
            if (!Directory.Exists(folder) && !File.Exists(folder))
            {
                throw new UsageException($"--data {folder} is neither a folder nor a manifest file.");
            }
            var loaded = await ModelLoader.LoadAsync(parse.GetRequiredValue(model), context, cancellationToken);
            using var pipeline = ModelLoader.CreatePipeline(loaded, context);
            var labels = pipeline.Manifest.Labels;
            var ignored = new List<string>();
            var skipped = new List<Reports.SkippedImage>();
            var samples = await EvaluationSamples.LoadAsync(folder, parse.GetValue(rewritePrefix), labels, ignored, skipped, context, cancellationToken, pipeline.IsMultiLabel);
            if (samples.Count == 0)
            {
                throw new UsageException($"--data {folder}: no images labelled with the model's labels ({string.Join(", ", labels)}).");
            }

            if (pipeline.IsMultiLabel)
            {
                return await EvaluateMultiLabelAsync(context, loaded, pipeline, samples, skipped, ignored, parse.GetValue(batchSize), parse.GetValue(json), cancellationToken);
            }

            // The top-1 label, never "unknown": the matrix has exactly the model's labels as columns.
            var pairs = new List<(string Actual, string Predicted)>();
            var belowThreshold = 0;
            var outOfDistribution = 0;
            await ProgressDisplay.RunAsync(context, async sink =>
            {
                var done = 0;
                var actualByFile = samples.ToDictionary(s => s.Input.Name, s => s.Actual, StringComparer.Ordinal);
                await ImageFiles.ClassifyAsync(pipeline, [.. samples.Select(s => s.Input)], parse.GetValue(batchSize), 1, outcome =>
                {
                    if (outcome.Classification is { } c)
                    {
                        pairs.Add((actualByFile[outcome.File], c.Top[0].Label));
                        belowThreshold += c.Confidence < c.Threshold ? 1 : 0;
                        outOfDistribution += c.OutOfDistribution > 1 ? 1 : 0;
                    }
                    else
                    {
                        skipped.Add(new Reports.SkippedImage(outcome.File, $"{outcome.ErrorCode}: {outcome.ErrorMessage}"));
                    }
                    sink.Report("evaluate", ++done, samples.Count);
                }, cancellationToken);
                return done;
            });

            var metrics = Evaluation.Compute(labels, pairs);
            Print(context, loaded, metrics, belowThreshold, outOfDistribution, pipeline, skipped);
            if (parse.GetValue(json) is { } jsonFile)
            {
                var document = MetricsJson.Create(metrics);
                document["model"] = loaded.Description;
                if (loaded.Version is { } v)
                {
                    document["modelVersion"] = v;
                }
                document["threshold"] = pipeline.Manifest.ConfidenceThreshold;
                if (pipeline.Manifest.ClassThresholds is { } own)
                {
                    document["classThresholds"] = own.Thresholds;
                }
                document["belowThreshold"] = belowThreshold;
                document["outOfDistribution"] = outOfDistribution; // out-of-distribution score above 1 (0 for a model without the statistics)
                document["skipped"] = skipped;
                document["ignoredFolders"] = ignored; // labels of the data the model lacks (folder names, or a manifest's labels)
                await File.WriteAllTextAsync(jsonFile, JsonSerializer.Serialize(document, Json), cancellationToken);
                context.WriteLine($"Wrote {jsonFile}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>A multi-label model: each label at its threshold (precision, recall, F1, AP), micro and macro F1, mAP, exact match.</summary>
    private static async Task<int> EvaluateMultiLabelAsync(CliContext context, LoadedModel loaded, ModelCore.Inference.ClassificationPipeline pipeline, List<(ImageInput Input, string Actual)> samples,
        List<Reports.SkippedImage> skipped, List<string> ignored, int batchSize, string? jsonFile, CancellationToken cancellationToken)
    {
        var labels = pipeline.Manifest.Labels;
        var index = labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i, StringComparer.Ordinal);
        var actualByFile = samples.ToDictionary(s => s.Input.Name, s => s.Actual, StringComparer.Ordinal);
        var probabilities = new List<double>();
        var truth = new List<bool>();
        await ProgressDisplay.RunAsync(context, async sink =>
        {
            var done = 0;
            await ImageFiles.ClassifyAsync(pipeline, [.. samples.Select(s => s.Input)], batchSize, labels.Count, outcome =>
            {
                if (outcome.Classification is { } c)
                {
                    var row = new double[labels.Count];
                    foreach (var t in c.Top)
                    {
                        row[index[t.Label]] = t.Probability;
                    }
                    probabilities.AddRange(row);
                    var carried = actualByFile[outcome.File].Split(';', StringSplitOptions.RemoveEmptyEntries);
                    truth.AddRange(labels.Select(l => carried.Contains(l, StringComparer.Ordinal)));
                }
                else
                {
                    skipped.Add(new Reports.SkippedImage(outcome.File, $"{outcome.ErrorCode}: {outcome.ErrorMessage}"));
                }
                sink.Report("evaluate", ++done, samples.Count);
            }, cancellationToken);
            return done;
        });
        var report = MultiLabelEvaluation.Compute(labels, [.. probabilities], [.. truth], pipeline.Manifest.LabelThresholds!);
        context.WriteLine($"Model {loaded.Description}: {skipped.Count} skipped");
        foreach (var line in report.Describe())
        {
            context.WriteLine(line);
        }
        foreach (var s in skipped)
        {
            context.Error($"skipped {s.File}: {s.Reason}");
        }
        if (jsonFile is not null)
        {
            var document = new Dictionary<string, object?>
            {
                ["model"] = loaded.Description,
                ["modelVersion"] = loaded.Version,
                ["kind"] = "multiLabel",
                ["samples"] = report.Samples,
                ["microF1"] = report.MicroF1,
                ["macroF1"] = report.MacroF1,
                ["macroF1AtHalf"] = report.MacroF1AtHalf,
                ["meanAveragePrecision"] = report.MeanAveragePrecision,
                ["exactMatch"] = report.ExactMatch,
                ["perLabel"] = report.PerLabel,
                ["skipped"] = skipped,
                ["ignoredLabels"] = ignored,
            };
            await File.WriteAllTextAsync(jsonFile, JsonSerializer.Serialize(document, Json), cancellationToken);
            context.WriteLine($"Wrote {jsonFile}");
        }
        return ExitCodes.Ok;
    }

    private static void Print(CliContext context, LoadedModel model, EvaluationReport metrics, int belowThreshold, int outOfDistribution, ModelCore.Inference.ClassificationPipeline pipeline, List<Reports.SkippedImage> skipped)
    {
        context.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Model {model.Description}: accuracy {metrics.Accuracy * 100:0.00}% ({metrics.Correct}/{metrics.Samples}); {belowThreshold} below the confidence threshold {pipeline.Manifest.ConfidenceThreshold:0.###}{(pipeline.Manifest.ClassThresholds is { } own ? $" or their class's own ({own.Goal})" : "")}; " +
            $"{(pipeline.OutOfDistribution is null ? "no out-of-distribution statistics" : $"{outOfDistribution} out of distribution")}; {skipped.Count} skipped"));
        var perClass = new Table().AddColumns("label", "precision", "recall", "F1", "support");
        foreach (var c in metrics.PerClass)
        {
            perClass.AddRow(new Text(c.Label), Number(c.Precision), Number(c.Recall), Number(c.F1), new Text(c.Support.ToString(CultureInfo.InvariantCulture)));
        }
        context.Console.Write(perClass);
        var confusion = new Table().AddColumn("true \\ predicted");
        foreach (var label in metrics.Labels)
        {
            confusion.AddColumn(new TableColumn(new Text(label)).RightAligned());
        }
        for (var i = 0; i < metrics.ConfusionMatrix.Count; i++)
        {
            confusion.AddRow([new Text(metrics.Labels[i]), .. metrics.ConfusionMatrix[i].Select(n => new Text(n.ToString(CultureInfo.InvariantCulture)))]);
        }
        context.Console.Write(confusion);
        foreach (var s in skipped)
        {
            context.Error($"skipped {s.File}: {s.Reason}");
        }
    }

    private static Text Number(double value) => new(value.ToString("0.000", CultureInfo.InvariantCulture));
}
