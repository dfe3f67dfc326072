using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>
/// The multi-label benchmark (<c>--multilabel</c>): emoji of emoji-datasource-twitter tagged with the words of their names
/// that are among the most frequent (face, flag, ...; an emoji may carry several or none), every 5th held out (or several fifths,
/// each held-out emoji then scored as drawn by several emoji-datasource packages: a larger held-out set). The product's
/// multi-label head (one calibrated probe per label, a threshold each) against scikit-learn's one-vs-rest logistic
/// regression (standardised features, cross-validated C) on the same features (the served graph's <c>features</c> output),
/// scored on the held-out emoji: mAP, and macro F1 at the product's per-label thresholds against a single 0.5.
/// </summary>
internal static class MultiLabelRuns
{
    private static readonly HashSet<string> StopWords = ["with", "and", "of", "the", "a", "in", "on", "flag:", "&", "sign", "symbol", "button", "light", "dark", "skin", "tone", "medium"];

    /// <param name="finetuneEpochs">Above 0: also a multi-label fine-tune (layer4, a binary loss, at most this many epochs), scored the same way through its own served graph.</param>
    /// <param name="finetuneOnly">Only the fine-tune (its row alone; the head's and the peer's are the runs documented beside it).</param>
    /// <param name="peer">False: no scikit-learn row (the product's rows and the dumps alone).</param>
    /// <param name="labelSmoothing">The fine-tune's label smoothing; null: the plan's default.</param>
    /// <param name="heldOutFolds">The emoji held out: those whose place in sort order is one of these modulo 5 (the others train).</param>
    /// <param name="testStyles">
    /// The drawing styles the held-out emoji are scored in (twitter, google, facebook, apple: the emoji-datasource-STYLE packages).
    /// Training is always on Twitter's drawings. Beyond Twitter alone, only emoji drawn in every style listed are used, so each
    /// held-out emoji appears once per style, and the held-out figures' standard errors resample emoji (all their drawings together).
    /// </param>
    public static async Task<string> RunAsync(string repository, string work, IReadOnlyList<int> heldOutFolds, IReadOnlyList<string>? testStyles = null, int labelCount = 10, int finetuneEpochs = 0,
        bool finetuneOnly = false, bool peer = true, double? labelSmoothing = null)
    {
        IReadOnlyList<string> styles = testStyles is null || testStyles.Count == 0 ? ["twitter"] : testStyles;
        var modules = Path.Combine(repository, "node_modules");
        var package = Path.Combine(modules, "emoji-datasource-twitter");
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(package, "emoji.json")));
        var emoji = json.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("has_img_twitter").GetBoolean() && e.GetProperty("name").ValueKind == JsonValueKind.String)
            .Where(e => styles.All(s => e.TryGetProperty($"has_img_{s}", out var has) && has.GetBoolean()))
            .OrderBy(e => e.GetProperty("sort_order").GetInt32())
            .Select(e => (Image: e.GetProperty("image").GetString()!, Words: Words(e.GetProperty("name").GetString()!)))
            .ToList();
        var labels = emoji.SelectMany(e => e.Words.Distinct()).Where(w => !StopWords.Contains(w) && w.Length > 2)
            .GroupBy(w => w).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Take(labelCount).Select(g => g.Key).Order(StringComparer.Ordinal).ToList();
        var twitterOnly = styles is ["twitter"];
        var root = Path.Combine(work, $"multilabel-{string.Concat(heldOutFolds)}{(twitterOnly ? "" : $"-{string.Join('-', styles)}")}");
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
        Directory.CreateDirectory(root);
        // Training: Twitter's drawing of each training emoji. Held out: each held-out emoji in every style (file STYLE-IMAGE, but
        // Twitter's keeps its plain name, as before), rows of one emoji together; Group is the emoji's index, Style its drawing.
        var train = new List<Row>();
        var test = new List<Row>();
        for (var i = 0; i < emoji.Count; i++)
        {
            var (image, words) = emoji[i];
            string[] carried = [.. labels.Where(words.Contains)];
            if (!heldOutFolds.Contains(i % 5))
            {
                File.Copy(Path.Combine(package, "img", "twitter", "64", image), Path.Combine(root, image));
                train.Add(new Row(image, carried, i, "twitter"));
                continue;
            }
            foreach (var style in styles)
            {
                var file = style == "twitter" ? image : $"{style}-{image}";
                File.Copy(Path.Combine(modules, $"emoji-datasource-{style}", "img", style, "64", image), Path.Combine(root, file));
                test.Add(new Row(file, carried, i, style));
            }
        }
        var manifest = Path.Combine(root, "labels.csv");
        File.WriteAllLines(manifest, ["image,labels", .. train.Select(r => $"{r.File},\"{string.Join(';', r.Labels)}\"")]);
        var heldOutEmoji = test.Select(r => r.Group).Distinct().Count();
        Console.WriteLine($"== multi-label emoji (held out: every 5th from the {string.Join(" and ", heldOutFolds.Select(Ordinal))}, drawn by {string.Join(", ", styles)}): {labels.Count} labels ({string.Join(", ", labels)}); " +
            $"{train.Count} training, {test.Count} test images ({heldOutEmoji} emoji); {emoji.Count(e => !labels.Any(e.Words.Contains))} of {emoji.Count} emoji carry none, {emoji.Count(e => labels.Count(e.Words.Contains) > 1)} several");

        if (finetuneOnly)
        {
            var (only, onlySeconds, onlyKept) = await FinetuneAsync(root, manifest, labels, test, finetuneEpochs, PrecisionChoice.Fp32, labelSmoothing);
            var alone = new StringBuilder();
            alone.AppendLine(CultureInfo.InvariantCulture, $"Multi-label emoji, fine-tune only: {labels.Count} labels, {train.Count} training / {test.Count} held-out images.");
            alone.AppendLine();
            alone.AppendLine("| Contender | mAP | Macro-F1 (its thresholds) | Macro-F1 (every threshold 0.5) | Micro-F1 | Exact match | Train s |");
            alone.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            alone.AppendLine(CultureInfo.InvariantCulture,
                $"| product: multi-label fine-tune (layer4, binary loss, label smoothing {labelSmoothing?.ToString(CultureInfo.InvariantCulture) ?? "default"}, at most {finetuneEpochs} epochs) | {only.MeanAveragePrecision:P1} | {only.MacroF1:P1} | {only.MacroF1AtHalf:P1} | {only.MicroF1:P1} | {only.ExactMatch:P1} | {onlySeconds:F1} (prefix cache included) |");
            alone.AppendLine();
            alone.AppendLine(onlyKept);
            alone.AppendLine();
            alone.AppendLine("| Label | Test images | Threshold | Precision | Recall | F1 | AP |");
            alone.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var m in only.PerLabel)
            {
                alone.AppendLine(CultureInfo.InvariantCulture, $"| {m.Label} | {m.Support} | {m.Threshold:F3} | {m.Precision:P1} | {m.Recall:P1} | {m.F1:P1} | {m.AveragePrecision:P1} |");
            }
            return alone.ToString();
        }
        var plan = new HeadPlan { Data = manifest, MultiLabel = true, Precision = new ModelCore.Export.Quantization.PrecisionOptions { Precision = ModelCore.Export.Quantization.PrecisionChoice.Fp32 } };
        var dataset = await ImageFolderDataset.FromManifestAsync(manifest, options: TrainingEngine.DatasetOptionsFor(plan));
        var clock = Stopwatch.StartNew();
        using var result = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(root, "model"));
        var productSeconds = clock.Elapsed.TotalSeconds;
        var thresholds = result.Manifest.LabelThresholds!;

        // The served graph: its probabilities are the product's answers; its features are both contenders' inputs.
        var preprocessor = new ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage);
        using var engine = new OnnxEngine(await File.ReadAllBytesAsync(Path.Combine(result.Folder, ModelCheckpoint.OnnxFileName)), OnnxEngineOptions.Default);
        var (testFeatures, testProbabilities) = Run(engine, preprocessor, root, test);
        var truth = test.SelectMany(r => labels.Select(l => r.Labels.Contains(l))).ToArray();
        var product = MultiLabelEvaluation.Compute(labels, testProbabilities, truth, thresholds);
        // The evidence threshold rules are judged on: every training image's out-of-fold probabilities and the held-out
        // images' served probabilities, with their truth (one row each: truth 0/1 per label, then probabilities).
        await File.WriteAllLinesAsync(Path.Combine(root, "out-of-fold.csv"), result.ValidationPredictions.Select(p =>
            string.Join(',', labels.Select(l => p.Actual.Split(DataManifest.MultiLabelSeparator).Contains(l) ? "1" : "0").Concat(p.Probabilities.Select(v => v.ToString("R", CultureInfo.InvariantCulture))))));
        await File.WriteAllLinesAsync(Path.Combine(root, "test.csv"), Enumerable.Range(0, test.Count).Select(i =>
            string.Join(',', labels.Select((_, l) => truth[(i * labels.Count) + l] ? "1" : "0").Concat(labels.Select((_, l) => testProbabilities[(i * labels.Count) + l].ToString("R", CultureInfo.InvariantCulture))))));
        // Each held-out row's emoji (its index) and drawing style: threshold_rules.py resamples emoji, not rows, when this file is beside test.csv.
        await File.WriteAllLinesAsync(Path.Combine(root, "test-groups.csv"), test.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Group},{r.Style}")));

        JsonElement? peerScores = null;
        double[]? peerProbabilities = null;
        if (peer)
        {
            var peerDir = Path.Combine(root, "peer");
            Directory.CreateDirectory(peerDir);
            Write(Path.Combine(peerDir, "train.f32"), Run(engine, preprocessor, root, train).Features);
            Write(Path.Combine(peerDir, "test.f32"), testFeatures);
            await File.WriteAllTextAsync(Path.Combine(peerDir, "train.labels"), string.Join('\n', train.Select(r => string.Join(' ', labels.Select(l => r.Labels.Contains(l) ? 1 : 0)))));
            await File.WriteAllTextAsync(Path.Combine(peerDir, "test.labels"), string.Join('\n', test.Select(r => string.Join(' ', labels.Select(l => r.Labels.Contains(l) ? 1 : 0)))));
            var script = Path.Combine(AppContext.BaseDirectory, "peers", "sklearn_ovr.py");
            peerScores = await PeerProcesses.RunAsync("/usr/bin/python3", [script, peerDir, labels.Count.ToString(CultureInfo.InvariantCulture)]);
            peerProbabilities = [.. (await File.ReadAllLinesAsync(Path.Combine(peerDir, "test.proba"))).SelectMany(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(v => double.Parse(v, CultureInfo.InvariantCulture))];
        }

        // The fine-tune: the same images and manifest, its own model; scored on the held-out images through its served graph.
        (MultiLabelReport Report, double Seconds, string Kept)? finetune = null;
        if (finetuneEpochs > 0)
        {
            finetune = await FinetuneAsync(root, manifest, labels, test, finetuneEpochs, PrecisionChoice.Fp32, labelSmoothing);
        }

        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Multi-label emoji: {labels.Count} labels ({string.Join(", ", labels)}), {train.Count} training / {test.Count} held-out images; same features ({result.Manifest.Backbone}, {testFeatures.Length / test.Count} per image).");
        table.AppendLine();
        table.AppendLine("| Contender | mAP | Macro-F1 (its thresholds) | Macro-F1 (every threshold 0.5) | Micro-F1 | Exact match | Train s |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        table.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| product: multi-label head (a probe and a threshold per label) | {product.MeanAveragePrecision:P1} | {product.MacroF1:P1} | {product.MacroF1AtHalf:P1} | {product.MicroF1:P1} | {product.ExactMatch:P1} | {productSeconds:F1} (features included) |"));
        if (finetune is { } f)
        {
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| product: multi-label fine-tune (layer4, binary loss, at most {finetuneEpochs} epochs) | {f.Report.MeanAveragePrecision:P1} | {f.Report.MacroF1:P1} | {f.Report.MacroF1AtHalf:P1} | {f.Report.MicroF1:P1} | {f.Report.ExactMatch:P1} | {f.Seconds:F1} (prefix cache included) |"));
        }
        if (peerScores is { } p)
        {
            table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| scikit-learn one-vs-rest LogisticRegressionCV (standardised) | {p.GetProperty("mAP").GetDouble():P1} | - | {p.GetProperty("macroF1AtHalf").GetDouble():P1} | {p.GetProperty("microF1AtHalf").GetDouble():P1} | {p.GetProperty("exactMatchAtHalf").GetDouble():P1} | {p.GetProperty("trainSeconds").GetDouble():F1} (features given) |"));
        }
        table.AppendLine();
        if (peerScores is { } q)
        {
            table.Append(string.Create(CultureInfo.InvariantCulture, $"mAP, product minus peer: {(product.MeanAveragePrecision - q.GetProperty("mAP").GetDouble()) * 100:+0.0;-0.0;0.0} points. "));
        }
        table.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Per-label thresholds against a single 0.5 (product): macro F1 {(product.MacroF1 - product.MacroF1AtHalf) * 100:+0.0;-0.0;0.0} points."));
        table.AppendLine();
        table.Append(Uncertainty(labels, test, testProbabilities, truth, thresholds, peerProbabilities));
        if (finetune is { } kept)
        {
            table.AppendLine();
            table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Fine-tune minus head: mAP {(kept.Report.MeanAveragePrecision - product.MeanAveragePrecision) * 100:+0.0;-0.0;0.0} points, macro F1 {(kept.Report.MacroF1 - product.MacroF1) * 100:+0.0;-0.0;0.0} points. {kept.Kept}"));
        }
        table.AppendLine();
        table.AppendLine("| Label | Test images | Threshold | Precision | Recall | F1 | AP |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var m in product.PerLabel)
        {
            table.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {m.Label} | {m.Support} | {m.Threshold:F3} | {m.Precision:P1} | {m.Recall:P1} | {m.F1:P1} | {m.AveragePrecision:P1} |"));
        }
        return table.ToString();
    }

    /// <summary>A multi-label fine-tune on the training manifest, scored on the held-out images through its served graph; its kept-epoch reason.</summary>
    private static async Task<(MultiLabelReport Report, double Seconds, string Kept)> FinetuneAsync(string root, string manifest, List<string> labels,
        List<Row> test, int epochs, PrecisionChoice precision, double? labelSmoothing)
    {
        var plan = new FinetunePlan { Data = manifest, MultiLabel = true, Epochs = epochs, Precision = new ModelCore.Export.Quantization.PrecisionOptions { Precision = precision } };
        plan = labelSmoothing is { } smoothing ? plan with { LabelSmoothing = smoothing } : plan;
        var dataset = await ImageFolderDataset.FromManifestAsync(manifest, options: TrainingEngine.DatasetOptionsFor(plan));
        var clock = Stopwatch.StartNew();
        using var tuned = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(root, "model-finetune"),
            new TrainingRun { Progress = new Progress<TrainingProgress>(p => { if (p.Phase == TrainingPhase.Info) { Console.WriteLine($"  finetune: {p.Message}"); } }) });
        var seconds = clock.Elapsed.TotalSeconds;
        using var engine = new OnnxEngine(await File.ReadAllBytesAsync(Path.Combine(tuned.Folder, ModelCheckpoint.OnnxFileName)), OnnxEngineOptions.Default);
        var (_, probabilities) = Run(engine, new ImagePreprocessor(tuned.Manifest.Preprocessing, tuned.MeanImage), root, test);
        var truth = test.SelectMany(r => labels.Select(l => r.Labels.Contains(l))).ToArray();
        return (MultiLabelEvaluation.Compute(labels, probabilities, truth, tuned.Manifest.LabelThresholds!), seconds, tuned.Manifest.Training!.KeptEpochReason ?? "");
    }

    /// <summary>
    /// The held-out comparisons with their bootstrap standard errors, resampling held-out emoji (every drawing of one emoji
    /// together: they are not independent images), and the same comparisons in each drawing style alone.
    /// </summary>
    private static string Uncertainty(List<string> labels, List<Row> test, double[] probabilities, bool[] truth, IReadOnlyList<double> thresholds, double[]? peer)
    {
        var count = labels.Count;
        var groups = test.Select((r, i) => (r.Group, i)).GroupBy(g => g.Group).Select(g => g.Select(x => x.i).ToArray()).ToArray();
        (double Thresholds, double Map) Differences(IReadOnlyList<int> rows)
        {
            var p = rows.SelectMany(i => probabilities.AsSpan(i * count, count).ToArray()).ToArray();
            var t = rows.SelectMany(i => truth.AsSpan(i * count, count).ToArray()).ToArray();
            var product = MultiLabelEvaluation.Compute(labels, p, t, thresholds);
            var map = peer is null ? double.NaN
                : product.MeanAveragePrecision - MultiLabelEvaluation.Compute(labels, [.. rows.SelectMany(i => peer.AsSpan(i * count, count).ToArray())], t, thresholds).MeanAveragePrecision;
            return (product.MacroF1 - product.MacroF1AtHalf, map);
        }
        var random = new Random(2026);
        var resamples = Enumerable.Range(0, 1000).Select(_ => Differences([.. Enumerable.Range(0, groups.Length).SelectMany(_ => groups[random.Next(groups.Length)])])).ToList();
        static double Se(IEnumerable<double> values)
        {
            var v = values.ToArray();
            var mean = v.Average();
            return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        }
        var all = Differences([.. Enumerable.Range(0, test.Count)]);
        var text = new StringBuilder();
        var mapLine = peer is null ? "." : string.Create(CultureInfo.InvariantCulture, $"; product minus peer, mAP {all.Map * 100:+0.0;-0.0;0.0} points (SE {Se(resamples.Select(r => r.Map)) * 100:F1}).");
        text.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Bootstrap standard errors over the {groups.Length} held-out emoji (1,000 resamples; {(test.Count == groups.Length ? "one image each" : $"an emoji's {test.Count / groups.Length} drawings drawn together")}): " +
            $"per-label thresholds minus 0.5, macro F1 {all.Thresholds * 100:+0.0;-0.0;0.0} points (SE {Se(resamples.Select(r => r.Thresholds)) * 100:F1}){mapLine}"));
        var styles = test.Select(r => r.Style).Distinct().ToList();
        if (styles.Count > 1)
        {
            foreach (var style in styles)
            {
                var mine = Differences([.. test.Select((r, i) => (r, i)).Where(x => x.r.Style == style).Select(x => x.i)]);
                text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"- {style} drawings alone: thresholds minus 0.5, macro F1 {mine.Thresholds * 100:+0.0;-0.0;0.0} points{(peer is null ? "" : $"; product minus peer, mAP {mine.Map * 100:+0.0;-0.0;0.0} points")}."));
            }
        }
        return text.ToString();
    }

    private static string Ordinal(int k) => k switch { 1 => "1st", 2 => "2nd", 3 => "3rd", _ => string.Create(CultureInfo.InvariantCulture, $"{k}th") };

    private static string[] Words(string name) => name.ToLowerInvariant().Split([' ', '-', ',', ':'], StringSplitOptions.RemoveEmptyEntries);

    private static (float[] Features, double[] Probabilities) Run(OnnxEngine engine, ImagePreprocessor preprocessor, string root, List<Row> rows)
    {
        var decoder = new ImageDecoder();
        var features = new List<float>();
        var probabilities = new List<double>();
        foreach (var chunk in rows.Chunk(32))
        {
            var batch = chunk.SelectMany(r => preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(Path.Combine(root, r.File)))).ToArray();
            var (p, f) = engine.Predict(batch, chunk.Length, withFeatures: true);
            probabilities.AddRange(p.Select(v => (double)v));
            features.AddRange(f!);
        }
        return ([.. features], [.. probabilities]);
    }

    /// <summary>One image: its file under the run's folder, its labels, its emoji (index in sort order) and the style that drew it.</summary>
    private sealed record Row(string File, string[] Labels, int Group, string Style);

    private static void Write(string path, float[] values)
    {
        using var file = File.Create(path);
        file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }
}
