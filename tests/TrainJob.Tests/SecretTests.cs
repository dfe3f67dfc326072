using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Tests;

public sealed class SecretTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Errors_NeverPrintTheAccountKey(bool verbose)
    {
        var key = TestStorage.ConnectionString.Split(';').Single(p => p.StartsWith("AccountKey=", StringComparison.Ordinal))["AccountKey=".Length..];
        string[] args = verbose ? ["models", "promote", "19990101-000000-000000", "--verbose"] : ["models", "promote", "19990101-000000-000000"];

        var run = await new Cli().RunAsync(args);

        Assert.Equal(ExitCodes.Failure, run.ExitCode);
        Assert.DoesNotContain(key, run.All, StringComparison.Ordinal);
        Assert.DoesNotContain(key[..20], run.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedConnectionString_IsReportedWithoutItsKey()
    {
        const string Key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs=";
        using var output = new StringWriter();
        using var error = new StringWriter();

        var code = await CliApp.RunAsync(["models", "list", "--storage", $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Key};BlobEndpoint=not a uri"], output, error, new CliHost { Interactive = false });

        Assert.Equal(ExitCodes.Failure, code);
        Assert.DoesNotContain(Key, output.ToString() + error.ToString(), StringComparison.Ordinal);
        Assert.NotEmpty(error.ToString());
    }

    [Fact]
    public void Masker_RemovesKeysAndSignatures()
    {
        var masked = SecretMasker.Apply("AccountKey=abc123==;x https://a/b?sv=1&sig=ABC%2F&se=2 SharedAccessSignature=sv=1", []);

        Assert.DoesNotContain("abc123", masked, StringComparison.Ordinal);
        Assert.DoesNotContain("ABC%2F", masked, StringComparison.Ordinal);
        Assert.Contains("AccountKey=***", masked, StringComparison.Ordinal);
    }
}
