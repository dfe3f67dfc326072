namespace ServerlessClassifier.Infra.Tests;

/// <summary>
/// There is no Docker engine where these tests run, so the TrainJob images are checked by reading:
/// they publish the TrainJob project and run its assembly, and the GPU one builds against CUDA.
/// </summary>
public sealed class DockerfileTests
{
    private static string Read(string name) => File.ReadAllText(Path.Combine(BicepCli.RepositoryRoot, "src", "TrainJob", name));

    [Theory]
    [InlineData("Dockerfile")]
    [InlineData("Dockerfile.gpu")]
    public void Dockerfile_PublishesTrainJobAndRunsItsAssembly(string name)
    {
        var dockerfile = Read(name);

        Assert.Contains("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", dockerfile, StringComparison.Ordinal);
        Assert.Matches(@"dotnet publish src/TrainJob -c Release (-r linux-x64 --self-contained false )?-o /app", dockerfile);
        Assert.EndsWith("ENTRYPOINT [\"dotnet\", \"/app/ServerlessClassifier.TrainJob.dll\"]", dockerfile.TrimEnd(), StringComparison.Ordinal);
        Assert.Contains("\nUSER ", dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuDockerfile_BuildsAgainstTheCudaNativesForLinuxX64Only()
    {
        var dockerfile = Read("Dockerfile.gpu");

        Assert.Contains("dotnet restore src/TrainJob/TrainJob.csproj -r linux-x64 -p:TorchDevice=cuda", dockerfile, StringComparison.Ordinal);
        Assert.Contains("dotnet publish src/TrainJob -c Release -r linux-x64 --self-contained false -o /app --no-restore -p:TorchDevice=cuda", dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuDockerfile_RuntimeIsThePlainDotnetImageWithTheNvidiaVariables()
    {
        var instructions = Read("Dockerfile.gpu").Split('\n').Where(line => !line.TrimStart().StartsWith('#')).ToList();
        var from = instructions.Where(line => line.StartsWith("FROM ", StringComparison.Ordinal)).ToList();

        // TorchSharp-cuda-linux carries the CUDA runtime, cuBLAS and cuDNN: no CUDA base image under it
        // (a second copy of the same libraries, and NVIDIA_REQUIRE_CUDA refusing older drivers).
        Assert.Equal("FROM mcr.microsoft.com/dotnet/runtime:10.0 AS runtime", from[^1]);
        Assert.DoesNotContain(instructions, line => line.Contains("nvidia/cuda", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(instructions, line => line.Contains("NVIDIA_REQUIRE_CUDA", StringComparison.Ordinal));
        var code = string.Join('\n', instructions);
        Assert.Contains("NVIDIA_VISIBLE_DEVICES=all", code, StringComparison.Ordinal);
        Assert.Contains("NVIDIA_DRIVER_CAPABILITIES=compute,utility", code, StringComparison.Ordinal);
        // Nothing downloaded into the runtime stage (no package installs, no install scripts).
        Assert.DoesNotContain(instructions.SkipWhile(line => !line.StartsWith("FROM mcr.microsoft.com/dotnet/runtime", StringComparison.Ordinal)),
            line => line.Contains("apt-get", StringComparison.Ordinal) || line.Contains("curl", StringComparison.Ordinal));
    }

    [Fact]
    public void DockerIgnore_KeepsBuildOutputsOutOfTheContext()
    {
        var lines = File.ReadAllLines(Path.Combine(BicepCli.RepositoryRoot, ".dockerignore"));

        Assert.Contains("**/bin/", lines);
        Assert.Contains("**/obj/", lines);
        Assert.Contains(".git/", lines);
    }
}
