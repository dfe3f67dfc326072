using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// The whole improvement loop on the real engine against Azurite, through the CLI: train on three emoji categories
/// from the training container and publish; upload held-out images of those categories and of a fourth one the
/// model never saw (flags); the backfill (the Functions app's rule) writes their predictions and lists the uncertain
/// ones for review; export the queue, sort it as a person would (each image into its true label's folder, a new
/// folder for flags), import it (staged labels), approve them into the training container; train again and publish;
/// the new model is right on every image the old one queued.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ImprovementLoopTests : IDisposable
{
    private static readonly (string Category, string Label)[] Known = [("Smileys & Emotion", "smileys"), ("Animals & Nature", "animals"), ("Food & Drink", "food")];
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Loop_QueuedUploadsLabelledAndImported_RetrainedModelIsRightOnThem()
    {
        var cli = new Cli();
        var service = TestStorage.CreateServiceClient();
        var training = service.GetBlobContainerClient(cli.TrainingContainer);
        await training.CreateAsync();
        foreach (var (category, label) in Known)
        {
            foreach (var file in EmojiCategories.Files(category, 16))
            {
                await training.UploadBlobAsync($"{label}/{Path.GetFileName(file)}", BinaryData.FromBytes(await File.ReadAllBytesAsync(file)));
            }
        }
        var first = await cli.RunAsync("train", "--data", cli.TrainingContainer, "--output", temp.Combine("m1"), "--device", "cpu", "--publish");
        Assert.True(first.ExitCode == ExitCodes.Ok, first.All);
        var oldModel = await ModelPackage.LoadAsync(temp.Combine("m1"));
        Assert.NotNull(oldModel.Manifest.OutOfDistribution);
        Assert.NotNull(oldModel.FindFile(ModelFileRoles.OutOfDistribution));

        // Uploads: held-out emoji of the known categories and flags, which the model has no class for.
        var truth = new Dictionary<string, string>(StringComparer.Ordinal);
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        await images.CreateAsync();
        var uploads = Known.SelectMany(k => EmojiCategories.Files(k.Category, 4, skip: 16).Select(f => (File: f, k.Label)))
            .Concat(EmojiCategories.Files("Flags", 8, skip: 20).Select(f => (File: f, Label: "flags"))).ToList();
        for (var i = 0; i < uploads.Count; i++)
        {
            var name = $"uploads/{i:D2}.png";
            truth[name] = uploads[i].Label;
            await images.UploadBlobAsync(name, BinaryData.FromBytes(await File.ReadAllBytesAsync(uploads[i].File)));
        }
        var backfill = await cli.RunAsync("classify", "--model", "current", "--container");
        Assert.True(backfill.ExitCode == ExitCodes.Ok, backfill.All);

        var export = temp.Combine("review");
        var exported = await cli.RunAsync("review", "export", "--to", export);
        Assert.True(exported.ExitCode == ExitCodes.Ok, exported.All);
        var rows = File.ReadAllLines(Path.Combine(export, "review.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        var queued = rows.Select(r => (File: r[0], Suggested: r[1], Image: r[2], Reasons: r[8])).ToList();
        Assert.Contains(queued, q => truth[q.Image] == "flags"); // the old model cannot be right on these: it has no such class
        Assert.All(queued, q => Assert.True(File.Exists(Path.Combine(export, q.File)), q.File));
        Assert.All(queued, q => Assert.NotEmpty(q.Reasons));
        // Every listed upload was unknown, out of distribution or low-margin in its prediction document.
        var predictions = service.GetBlobContainerClient(cli.PredictionsContainer);
        foreach (var q in queued)
        {
            var document = JsonDocument.Parse((await predictions.GetBlobClient(q.Image + ".json").DownloadContentAsync()).Value.Content.ToString()).RootElement;
            Assert.True(document.TryGetProperty("outOfDistribution", out _), q.Image);
            var top = document.GetProperty("top");
            Assert.True(document.GetProperty("isUnknown").GetBoolean() || document.GetProperty("outOfDistribution").GetDouble() > 1
                || top[0].GetProperty("probability").GetDouble() - top[1].GetProperty("probability").GetDouble() < ReviewSettings.DefaultMarginBelow, q.Image);
        }

        // A person sorts the export: every image into its true label's folder.
        foreach (var q in queued)
        {
            var target = Path.Combine(export, truth[q.Image], Path.GetFileName(q.File));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (Path.GetFullPath(target) != Path.GetFullPath(Path.Combine(export, q.File)))
            {
                File.Move(Path.Combine(export, q.File), target);
            }
        }
        var import = await cli.RunAsync("review", "import", export, "--reviewer", "tester");
        Assert.True(import.ExitCode == ExitCodes.Ok, import.All);
        Assert.Contains($"Staged {queued.Count} labels by tester", import.Out, StringComparison.Ordinal);
        var empty = await cli.RunAsync("review", "export", "--to", temp.Combine("empty"));
        Assert.Contains("Exported 0 queued images", empty.Out, StringComparison.Ordinal);
        // Staged labels are not training data until they are approved.
        var approve = await cli.RunAsync("review", "approve", "--all", "--approver", "tester");
        Assert.True(approve.ExitCode == ExitCodes.Ok, approve.All);
        Assert.Contains($"Approved by tester: added {queued.Count} images to {cli.TrainingContainer}/", approve.Out, StringComparison.Ordinal);
        Assert.Contains("new classes: flags", approve.Out, StringComparison.Ordinal);
        // Importing again stages nothing: every image left the queue when it was labelled.
        var again = await cli.RunAsync("review", "import", export, "--reviewer", "tester");
        Assert.Contains($"Staged 0 labels by tester (none); 0 discarded; {queued.Count} were no longer queued", again.Out, StringComparison.Ordinal);

        var second = await cli.RunAsync("train", "--data", cli.TrainingContainer, "--output", temp.Combine("m2"), "--device", "cpu", "--publish");
        Assert.True(second.ExitCode == ExitCodes.Ok, second.All);
        var newModel = await ModelPackage.LoadAsync(temp.Combine("m2"));
        Assert.Equal(["animals", "flags", "food", "smileys"], newModel.Manifest.Labels);

        var files = queued.Select(q => Path.Combine(export, truth[q.Image], Path.GetFileName(q.File))).ToList();
        var classify = await cli.RunAsync(["classify", "--model", "current", "--json", .. files]);
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        var answers = classify.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(queued.Count, answers.Count);
        var published = second.Out.Split('\n').Single(l => l.StartsWith("Published version ", StringComparison.Ordinal)).Split(' ')[2];
        for (var i = 0; i < queued.Count; i++)
        {
            Assert.Equal(published, answers[i].GetProperty("modelVersion").GetString());
            Assert.Equal(truth[queued[i].Image], answers[i].GetProperty("top")[0].GetProperty("label").GetString());
        }
    }

    public void Dispose() => temp.Dispose();
}
