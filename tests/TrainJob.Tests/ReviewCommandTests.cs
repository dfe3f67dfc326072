using System.Text;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Review;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// The offline path through the CLI against Azurite: <c>review import</c> stages the sorted labels with who gave them,
/// the training data stays as it was until <c>review approve</c> (by label, image or all) or <c>review reject</c>, and
/// every label, discard and decision is recorded.
/// </summary>
public sealed class ReviewCommandTests : IDisposable
{
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Import_StagesWithWhoLabelled_TrainingSeesOnlyWhatWasApproved_AndEveryDecisionIsRecorded()
    {
        var cli = new Cli();
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        await images.CreateAsync();
        var queue = new ReviewQueue(service.GetBlobContainerClient(cli.ReviewContainer), new ReviewSettings { Container = cli.ReviewContainer });
        var files = TestAssets.SampleEmoji(6);
        var versions = new Dictionary<string, string>();
        for (var i = 0; i < files.Count; i++)
        {
            var name = $"uploads/{i}.png";
            await images.UploadBlobAsync(name, BinaryData.FromBytes(await File.ReadAllBytesAsync(files[i])));
            versions[name] = PredictionBlobs.VersionOf((await images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag);
            Assert.Equal(ReviewOutcome.Queued, await queue.OfferAsync(Unknown(name, versions[name])));
        }
        var export = temp.Combine("review");
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("review", "export", "--to", export)).ExitCode);
        // Sorted as a person would: 0, 1, 5 are cats (as suggested), 2 and 3 dogs (a new folder), 4 is thrown away.
        Directory.CreateDirectory(Path.Combine(export, "dogs"));
        File.Move(Path.Combine(export, "cats", "uploads_2.png"), Path.Combine(export, "dogs", "uploads_2.png"));
        File.Move(Path.Combine(export, "cats", "uploads_3.png"), Path.Combine(export, "dogs", "uploads_3.png"));
        File.Move(Path.Combine(export, "cats", "uploads_4.png"), Path.Combine(export, ReviewCommands.DiscardFolder, "uploads_4.png"));

        // With a connection string nothing proves who is importing: the operator must say.
        var anonymous = await cli.RunAsync("review", "import", export);
        Assert.Equal(ExitCodes.Usage, anonymous.ExitCode);
        Assert.Contains("--reviewer <name>", anonymous.Err, StringComparison.Ordinal);
        Assert.Equal(6, await queue.ListAsync().CountAsync());

        var imported = await cli.RunAsync("review", "import", export, "--reviewer", "Rita");

        Assert.True(imported.ExitCode == ExitCodes.Ok, imported.All);
        Assert.Contains("Staged 5 labels by Rita (cats 3, dogs 2); 1 discarded; 0 were no longer queued", imported.Out, StringComparison.Ordinal);
        Assert.Contains("Nothing reaches the training data until it is approved", imported.Out, StringComparison.Ordinal);
        Assert.Equal(0, await queue.ListAsync().CountAsync());
        var training = service.GetBlobContainerClient(cli.TrainingContainer);
        Assert.False((await training.ExistsAsync()).Value); // what train --data <training container> would read: nothing yet

        var unchosen = await cli.RunAsync("review", "approve", "--approver", "Abel");
        Assert.Equal(ExitCodes.Usage, unchosen.ExitCode);
        Assert.Contains("image names, --label <label> or --all", unchosen.Err, StringComparison.Ordinal);

        var dogs = await cli.RunAsync("review", "approve", "--label", "dogs", "--approver", "Abel");
        Assert.True(dogs.ExitCode == ExitCodes.Ok, dogs.All);
        Assert.Contains($"Approved by Abel: added 2 images to {cli.TrainingContainer}/ (dogs 2; new classes: dogs)", dogs.Out, StringComparison.Ordinal);
        var rejected = await cli.RunAsync("review", "reject", "uploads/5.png", "--approver", "Abel");
        Assert.Contains("Rejected by Abel: 1 labels (nothing added)", rejected.Out, StringComparison.Ordinal);
        var rest = await cli.RunAsync("review", "approve", "--all", "--approver", "Abel");
        Assert.Contains($"Approved by Abel: added 2 images to {cli.TrainingContainer}/ (cats 2; new classes: cats)", rest.Out, StringComparison.Ordinal);

        var data = await ImageFolderDataset.FromBlobContainerAsync(training);
        Assert.Equal(["cats", "dogs"], data.Labels);
        Assert.Equal(["cats/uploads_0.png", "cats/uploads_1.png", "dogs/uploads_2.png", "dogs/uploads_3.png"],
            data.Train.Concat(data.Validation).Select(i => $"{i.Label}/{Path.GetFileName(i.Source)}").Order(StringComparer.Ordinal));
        Assert.Equal(await File.ReadAllBytesAsync(files[2]), (await training.GetBlobClient("dogs/uploads_2.png").DownloadContentAsync()).Value.Content.ToArray());

        var records = await new ReviewLabels(service.GetBlobContainerClient(cli.ReviewContainer)).ListRecordsAsync().ToDictionaryAsync(r => r.Image);
        Assert.Equal(6, records.Count);
        Assert.All(records.Values, r => Assert.Equal((versions[r.Image], "cats", "Rita", ReviewActor.Sources.CommandLine), (r.ImageVersion, r.SuggestedLabel, r.LabelledBy.Name, r.LabelledBy.Source)));
        Assert.Equal(LabelDecisions.Discarded, records["uploads/4.png"].Decision);
        Assert.Equal((LabelDecisions.Rejected, "Abel"), (records["uploads/5.png"].Decision, records["uploads/5.png"].DecidedBy!.Name));
        Assert.All(Enumerable.Range(0, 4).Select(i => records[$"uploads/{i}.png"]), r => Assert.Equal((LabelDecisions.Approved, "Abel"), (r.Decision, r.DecidedBy!.Name)));

        // Importing the same folder again: every image left the queue already, nothing is staged twice.
        var again = await cli.RunAsync("review", "import", export, "--reviewer", "Rita");
        Assert.Contains("Staged 0 labels by Rita (none); 0 discarded; 6 were no longer queued", again.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedModelsLabels_AreApprovedIntoThatModelsTrainingData_AndDataForTheDefaultIsRefusedForThem()
    {
        var cli = new Cli();
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        await images.CreateAsync();
        var queue = new ReviewQueue(service.GetBlobContainerClient(cli.ReviewContainer), new ReviewSettings { Container = cli.ReviewContainer });
        var files = TestAssets.SampleEmoji(2);
        foreach (var (name, model) in new[] { ("cats/a.png", "cats"), ("b.png", (string?)null) })
        {
            await images.UploadBlobAsync(name, BinaryData.FromBytes(await File.ReadAllBytesAsync(files[name == "b.png" ? 1 : 0])));
            var version = PredictionBlobs.VersionOf((await images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag);
            Assert.Equal(ReviewOutcome.Queued, await queue.OfferAsync(Unknown(name, version) with { Model = model }));
        }
        // One model at a time: only its uploads, so its folders are its classes.
        var catsOnly = await cli.RunAsync("review", "export", "--to", temp.Combine("cats-only"), "--model", "cats");
        Assert.True(catsOnly.ExitCode == ExitCodes.Ok, catsOnly.All);
        Assert.Contains("Exported 1 queued images", catsOnly.Out, StringComparison.Ordinal);
        Assert.Contains("Only the uploads of model cats; 1 of other models were left in the queue.", catsOnly.Out, StringComparison.Ordinal);
        Assert.Equal(["cats_a.png"], Directory.GetFiles(temp.Combine("cats-only"), "*.png", SearchOption.AllDirectories).Select(Path.GetFileName));
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("review", "export", "--to", temp.Combine("bad"), "--model", "Cats/1")).ExitCode);

        var export = temp.Combine("review");
        var both = await cli.RunAsync("review", "export", "--to", export);
        Assert.True(both.ExitCode == ExitCodes.Ok, both.All);
        Assert.Contains("several models' uploads (cats 1, default 1)", both.Out, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("review", "import", export, "--reviewer", "Rita")).ExitCode);

        // --data names the default model's training data: with the named model's label among those chosen it is refused, nothing decided.
        var refused = await cli.RunAsync("review", "approve", "--all", "--data", cli.TrainingContainer, "--approver", "Abel");
        Assert.Equal(ExitCodes.Usage, refused.ExitCode);
        Assert.Contains("labels of named models (cats) are among those chosen", refused.Err, StringComparison.Ordinal);
        Assert.Equal(2, await new ReviewLabels(service.GetBlobContainerClient(cli.ReviewContainer)).ListStagedAsync().CountAsync());

        var approved = await cli.RunAsync("review", "approve", "--all", "--approver", "Abel");

        Assert.True(approved.ExitCode == ExitCodes.Ok, approved.All);
        Assert.Contains("Approved by Abel: added 2 images to ", approved.Out, StringComparison.Ordinal);
        Assert.Contains($"{cli.NamedTrainingContainer}/cats/", approved.Out, StringComparison.Ordinal);
        Assert.Contains($"{cli.TrainingContainer}/ ", approved.Out, StringComparison.Ordinal);
        Assert.Equal(["cats/cats/cats_a.png"], await service.GetBlobContainerClient(cli.NamedTrainingContainer).GetBlobsAsync().Select(b => b.Name).ToListAsync());
        Assert.Equal(["cats/b.png"], await service.GetBlobContainerClient(cli.TrainingContainer).GetBlobsAsync().Select(b => b.Name).ToListAsync());
    }

    [Fact]
    public void OperatorIdentity_IsReadFromTheAccessTokensObjectIdAndName()
    {
        static string Part(string json) => Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var token = $"{Part("""{"alg":"RS256"}""")}.{Part("""{"oid":"6a0f","upn":"ops@example.org","name":"Ops"}""")}.signature";

        var actor = OperatorIdentity.FromAccessToken(token);

        Assert.Equal(new ReviewActor { Id = "6a0f", Name = "ops@example.org", Source = ReviewActor.Sources.AzureIdentity }, actor);
        Assert.Null(OperatorIdentity.FromAccessToken($"{Part("{}")}.{Part("""{"upn":"x"}""")}.s")); // no object id
        Assert.Null(OperatorIdentity.FromAccessToken("not a token"));
    }

    public void Dispose() => temp.Dispose();

    private static PredictionDocument Unknown(string image, string version) => new()
    {
        Status = PredictionStatus.Ok,
        Image = image,
        ImageVersion = version,
        ModelVersion = "v1",
        Label = "unknown",
        Confidence = 0.4,
        IsUnknown = true,
        Threshold = 0.5,
        UnknownReason = UnknownReasons.LowConfidence,
        Top = [new LabelProbability("cats", 0.4), new LabelProbability("dogs", 0.35)],
        Source = PredictionSource.Backfill,
    };
}
