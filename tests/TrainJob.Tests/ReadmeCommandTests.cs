using System.Text.RegularExpressions;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// The README's commands cannot rot: every <c>trainjob ...</c> line in it parses with the real command
/// line (known command, known options, valid values), and the scripts it names exist. scripts/demo.sh
/// runs train, evaluate and the blob/HTTP functions for real; the other commands are run by the tests of
/// this project.
/// </summary>
public sealed partial class ReadmeCommandTests
{
    private static readonly string Readme = File.ReadAllText(Path.Combine(TestAssets.RepositoryRoot, "README.md"));

    public static TheoryData<string> TrainJobLines() => [.. Commands()];

    private static IEnumerable<string> Commands() => TrainJobLine().Matches(Readme).Select(m => m.Groups[1].Value.Trim());

    [Theory]
    [MemberData(nameof(TrainJobLines))]
    public void ReadmeCommand_ParsesWithTheRealCommandLine(string line)
    {
        var command = line.Split('#')[0].Trim();
        var parse = CliApp.Build(new CliHost()).Parse(command);
        Assert.True(parse.Errors.Count == 0, $"README: `trainjob {command}`: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
    }

    [Fact]
    public void Readme_DocumentsEveryTrainJobCommand()
    {
        var lines = Commands().ToList();
        foreach (var command in new[] { "train", "evaluate", "classify", "publish", "models list", "models promote" })
        {
            Assert.Contains(lines, l => l.StartsWith(command + " ", StringComparison.Ordinal));
        }
    }

    [Theory]
    [InlineData("scripts/demo.sh")]
    [InlineData("scripts/test.sh")]
    [InlineData("scripts/bench.sh")]
    [InlineData("scripts/export-customvision.sh")]
    public void ReadmeScripts_Exist(string script)
    {
        Assert.Contains($"bash {script}", Readme, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(TestAssets.RepositoryRoot, script)), $"{script} is named in the README but missing");
    }

    [GeneratedRegex(@"^trainjob (.+)$", RegexOptions.Multiline)]
    private static partial Regex TrainJobLine();
}
