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
        Assert.Contains("dotnet publish src/TrainJob -c Release -o /app", dockerfile, StringComparison.Ordinal);
        Assert.EndsWith("ENTRYPOINT [\"dotnet\", \"/app/ServerlessClassifier.TrainJob.dll\"]", dockerfile.TrimEnd(), StringComparison.Ordinal);
        Assert.Contains("\nUSER ", dockerfile, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuDockerfile_BuildsAgainstTheCudaNatives()
    {
        var dockerfile = Read("Dockerfile.gpu");

        Assert.Contains("dotnet restore src/TrainJob/TrainJob.csproj -p:TorchDevice=cuda", dockerfile, StringComparison.Ordinal);
        Assert.Contains("-o /app --no-restore -p:TorchDevice=cuda", dockerfile, StringComparison.Ordinal);
        Assert.Contains("ARG CUDA_IMAGE=nvidia/cuda:", dockerfile, StringComparison.Ordinal);
        Assert.Contains("FROM ${CUDA_IMAGE} AS runtime", dockerfile, StringComparison.Ordinal);
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
