using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Review;

namespace ServerlessClassifier.TrainJob.Tests;

public sealed class CommandLineTests
{
    private readonly Cli cli = new();

    [Theory]
    [InlineData("train", "--data|--output|--mode|--unfreeze|--epochs|--batch-size|--lr|--seed|--val-split|--device|--backbone|--resume|--publish")]
    [InlineData("evaluate", "--model|--data|--json")]
    [InlineData("classify", "--model|--top|--json|--container")]
    [InlineData("publish", "--model")]
    [InlineData("models list", "--storage")]
    [InlineData("models promote", "version")]
    [InlineData("", "train|evaluate|classify|publish|models")]
    public async Task Help_ExitsZeroAndNamesTheOptions(string command, string expected)
    {
        var run = await cli.RunAsync([.. command.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help"]);

        Assert.Equal(ExitCodes.Ok, run.ExitCode);
        foreach (var name in expected.Split('|'))
        {
            Assert.Contains(name, run.Out, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--epochs", "train --data d --output o --epochs 0")]
    [InlineData("--val-split", "train --data d --output o --val-split 1.5")]
    [InlineData("--mode", "train --data d --output o --mode everything")]
    [InlineData("--device", "train --data d --output o --device tpu")]
    [InlineData("--backbone", "train --data d --output o --backbone resnet101")]
    [InlineData("--unfreeze", "train --data d --output o --unfreeze layer4")]
    [InlineData("--unfreeze", "train --data d --output o --mode finetune --unfreeze layer9")]
    [InlineData("--shard-size", "train --data d --output o --feature-cache --distributed --shard-size 5001")]
    [InlineData("--data", "train --output o")]
    [InlineData("--model", "evaluate --data d")]
    [InlineData("--top", "classify --model m x.png --top 0")]
    [InlineData("--bogus", "models list --bogus")]
    public async Task UsageErrors_ExitTwoAndNameTheOption(string option, string commandLine)
    {
        var run = await cli.RunAsync(commandLine.Split(' '));

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains(option, run.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Classify_WithoutInputsOrContainer_IsAUsageError()
    {
        var run = await cli.RunAsync("classify", "--model", "current");

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--container", run.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("My_Photos", "container name 'My_Photos' has 'M': only lower-case letters, digits and hyphens are allowed")]
    [InlineData("training--2024/new", "container name 'training--2024' has two hyphens in a row")]
    [InlineData("ab/labels", "container name 'ab' has 2 characters; it needs 3 to 63")]
    public async Task ReviewImport_DataThatIsNeitherAFolderNorAContainerName_IsAUsageErrorThatSaysWhy(string data, string problem)
    {
        var folder = Directory.CreateTempSubdirectory("review-import-").FullName;
        try
        {
            ReviewCsv.Write(Path.Combine(folder, ReviewCsv.FileName), []);

            var run = await cli.RunAsync("review", "import", folder, "--approve", "--data", data);

            Assert.Equal(ExitCodes.Usage, run.ExitCode);
            Assert.Contains($"--data {data} is neither an existing folder nor container[/prefix]: {problem}.", run.Err, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
