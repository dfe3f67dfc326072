using System.Text.Json;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp.PyBridge;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// Architectures of the registry, brought from PyTorch as a user would: a torchvision <c>state_dict</c> saved with
/// <c>torch.save</c> (random init, made by Debian's python3-torch through tests/fixtures/make_architecture_reference.py
/// into the reference cache, <see cref="ReferencePython.Cached"/>: a VGG's is over 500 MB). It loads unchanged and
/// gives PyTorch's logits; <c>train --backbone it.pth</c> trains in head and in finetune mode (the default stage: the
/// last) on a tiny set at 64 px; and <c>classify</c> serves the model through the ONNX pipeline. Every run checks the
/// logits of the smallest member of each family and variant (<see cref="ArchitectureMatrix.EveryRun"/>) and trains each
/// family once per mode (<see cref="ArchitectureMatrix.EveryRunTraining"/>); the full run does the rest: every
/// architecture's logits, and every architecture in both modes.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ArchitectureTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Largest |ours - PyTorch's| logit difference, relative to the largest |logit|.</summary>
    private const double RelativeTolerance = 1e-4;

    private readonly TempFolder temp = new();

    [Theory]
    [MemberData(nameof(ArchitectureMatrix.EveryRunData), MemberType = typeof(ArchitectureMatrix))]
    public void StateDictFromPyTorch_LoadsUnchanged_AndGivesPyTorchsLogits(string id) => AssertLogitsMatchPyTorch(id);

    [Theory]
    [Trait(ArchitectureMatrix.Category, ArchitectureMatrix.Full)]
    [MemberData(nameof(ArchitectureMatrix.FullOnlyData), MemberType = typeof(ArchitectureMatrix))]
    public void StateDictFromPyTorch_LoadsUnchanged_AndGivesPyTorchsLogits_FullMatrix(string id) => AssertLogitsMatchPyTorch(id);

    [Theory]
    [MemberData(nameof(ArchitectureMatrix.EveryRunTrainingData), MemberType = typeof(ArchitectureMatrix))]
    public Task StateDictFromPyTorch_Trains_AndClassifies(string id, string mode) => AssertTrainsAndClassifiesAsync(id, mode);

    [Theory]
    [Trait(ArchitectureMatrix.Category, ArchitectureMatrix.Full)]
    [MemberData(nameof(ArchitectureMatrix.FullOnlyTrainingData), MemberType = typeof(ArchitectureMatrix))]
    public Task StateDictFromPyTorch_Trains_AndClassifies_FullMatrix(string id, string mode) => AssertTrainsAndClassifiesAsync(id, mode);

    /// <summary>
    /// <c>train --backbone it.pth</c> in <paramref name="mode"/> (head, or finetune of the default stage, the last,
    /// for one epoch), then <c>classify</c> with the model: head mode reads the pooled stages its family pools, finetune
    /// mode trains the last stage and nothing else.
    /// </summary>
    private async Task AssertTrainsAndClassifiesAsync(string id, string mode)
    {
        TorchRuntime.EnsureInitialized();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Step(string what) => output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  {what}");
        var architecture = BackboneCatalog.Architecture(id);
        var weights = StateDict(id);
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var cli = new Cli();
        var image = Path.Combine(data, "red", "5.png");
        var model = temp.Combine(mode);
        Step("reference made by PyTorch (or found in the cache)");

        if (mode == "head")
        {
            var run = await cli.RunAsync("train", "--data", data, "--output", model, "--backbone", weights, "--input-size", "64", "--device", "cpu");
            Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
            Step("head mode trained");
            var manifest = (await ModelPackage.LoadAsync(model)).Manifest;
            Assert.Equal(id, manifest.Backbone);
            Assert.Equal($"torchvision weights {id}.pth", manifest.BackboneSource);
            Assert.Equal(64, manifest.Preprocessing.InputSize);
            // Only ResNets pool several stages; the others' heads read the replaced layer's input.
            Assert.Equal(architecture is ResNetArchitecture ? 2 : 1, manifest.Head.PooledStages);
        }
        else
        {
            Assert.Equal("finetune", mode);
            var run = await cli.RunAsync("train", "--data", data, "--output", model, "--backbone", weights, "--input-size", "64", "--mode", "finetune", "--epochs", "1", "--device", "cpu");
            Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
            Step("finetune mode trained");
            var package = await ModelPackage.LoadAsync(model);
            Assert.Equal(id, package.Manifest.Backbone);
            var last = architecture.StageNames[^1];
            Assert.Equal([last], package.Manifest.Training!.UnfreezeStages);
            // The served model is the epoch with the lowest validation loss, which may be the start (epoch 0: the
            // probe on the pretrained backbone, nothing changed); what the epoch trained is in the resume checkpoint.
            Assert.Equal(package.Manifest.Training!.BestEpoch == 0 ? [] : [last], ChangedStages(package, weights, trainedWeights: null));
            var epochWeights = Directory.GetFiles(Path.Combine(model, TrainCommand.CheckpointsFolder), "resume-e*-weights.safetensors").Order(StringComparer.Ordinal).Last();
            Assert.Equal([last], ChangedStages(package, weights, epochWeights));
            Step("changed stages compared");
        }
        await AssertClassifiesAsync(cli, model, image, (await ModelPackage.LoadAsync(model)).Manifest.Labels);
        Step($"{mode} model classified");
    }

    public void Dispose()
    {
        temp.Dispose();
        // A VGG's module, state_dict and graphs are native memory released by finalizers: release them before
        // the next architecture loads its own.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>The state_dict, 5-class head included, loads into our module and gives PyTorch's logits on PyTorch's batch.</summary>
    private void AssertLogitsMatchPyTorch(string id)
    {
        TorchRuntime.EnsureInitialized();
        var weights = StateDict(id);
        var referencePath = Path.Combine(Path.GetDirectoryName(weights)!, $"{id}.reference.pth");
        var loaded = TorchVisionWeights.CreateClassifier(weights, HeadSpec.Linear(5));
        using var model = loaded.Model;
        Assert.Empty(loaded.Report.DroppedHeadKeys);
        Assert.DoesNotContain(loaded.Report.Missing, name => !name.EndsWith("num_batches_tracked", StringComparison.Ordinal));
        model.eval();
        var table = PyTorchUnpickler.UnpickleStateDict(referencePath);
        using var input = (Tensor)table["input"]!;
        using var expected = (Tensor)table["logits"]!;
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var logits = model.call(input);
        var relative = (logits - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        output.WriteLine($"max |logits - PyTorch's| / max |PyTorch's| = {relative:E2}");
        Assert.True(relative <= RelativeTolerance, $"logits differ from PyTorch's by {relative:E2} of the largest, over {RelativeTolerance:E0}");
    }

    /// <summary>
    /// The architecture's <c>state_dict</c> as <c>torch.save</c> writes it, with PyTorch's logits beside it
    /// (<c>ID.reference.pth</c>), from the reference cache.
    /// </summary>
    private string StateDict(string id)
    {
        var reference = ReferencePython.Cached("make_architecture_reference.py", "state-dict", id);
        output.WriteLine($"reference files: {reference}");
        return Path.Combine(reference, $"{id}.pth");
    }

    /// <summary>classify answers with one of the model's labels and probabilities that sum to 1.</summary>
    private static async Task AssertClassifiesAsync(Cli cli, string model, string image, IReadOnlyList<string> labels)
    {
        var classify = await cli.RunAsync("classify", "--model", model, "--json", image);
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        using var document = JsonDocument.Parse(classify.Out.Trim());
        Assert.Equal("ok", document.RootElement.GetProperty("status").GetString());
        var top = document.RootElement.GetProperty("top").EnumerateArray().ToList();
        Assert.Contains(top[0].GetProperty("label").GetString(), labels);
        Assert.InRange(top.Sum(t => t.GetProperty("probability").GetDouble()), 0.999, 1.001);
    }

    /// <summary>
    /// The stages whose parameters differ from the pretrained file's: of the served model, or with
    /// <paramref name="trainedWeights"/> (a resume checkpoint's weights) loaded into it, of those.
    /// </summary>
    private static List<string?> ChangedStages(ModelPackage package, string weights, string? trainedWeights)
    {
        using var trained = ModelCheckpoint.CreateTorchModel(package);
        if (trainedWeights is not null)
        {
            var state = Safetensors.LoadStateDict(trainedWeights);
            trained.load_state_dict(state, strict: true);
            foreach (var tensor in state.Values)
            {
                tensor.Dispose();
            }
        }
        var original = TorchVisionWeights.ReadStateDict(weights);
        try
        {
            var names = trained.Backbone.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
            return [.. trained.Backbone.Parts()
                .Where(part => part.Module.parameters().Any(p => !p.allclose(original[names[p.Handle]], rtol: 0, atol: 0)))
                .Select(part => part.Stage)
                .Distinct()];
        }
        finally
        {
            foreach (var tensor in original.Values)
            {
                tensor.Dispose();
            }
        }
    }
}
