using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Tests.Storage;

/// <summary>Azure Storage's container-name rule, the one check behind the app's settings and the CLI's <c>--data</c>.</summary>
public sealed class ContainerNamesTests
{
    [Theory]
    [InlineData("abc")]
    [InlineData("images")]
    [InlineData("classify-shards")]
    [InlineData("e2e-images-0123456789ab")]
    [InlineData("0-9")]
    [InlineData("a1b2c3")]
    public void ValidNames_HaveNoProblem(string name)
    {
        Assert.Null(ContainerNames.Problem(name));
        Assert.True(ContainerNames.IsValid(name));
    }

    [Fact]
    public void LengthLimits_AreThreeAndSixtyThree()
    {
        Assert.True(ContainerNames.IsValid(new string('a', 63)));
        Assert.Equal($"container name '{new string('a', 64)}' has 64 characters; it needs 3 to 63", ContainerNames.Problem(new string('a', 64)));
        Assert.Equal("container name 'ab' has 2 characters; it needs 3 to 63", ContainerNames.Problem("ab"));
    }

    [Theory]
    [InlineData(null, "the container name is empty")]
    [InlineData("", "the container name is empty")]
    [InlineData("Images", "container name 'Images' has 'I': only lower-case letters, digits and hyphens are allowed")]
    [InlineData("my_images", "container name 'my_images' has '_': only lower-case letters, digits and hyphens are allowed")]
    [InlineData("photos/2024", "container name 'photos/2024' has '/': only lower-case letters, digits and hyphens are allowed")]
    [InlineData("bilder-ä", "container name 'bilder-ä' has 'ä': only lower-case letters, digits and hyphens are allowed")]
    [InlineData("-images", "container name '-images' starts with a hyphen; it must start and end with a letter or digit")]
    [InlineData("images-", "container name 'images-' ends with a hyphen; it must start and end with a letter or digit")]
    [InlineData("my--images", "container name 'my--images' has two hyphens in a row")]
    public void InvalidNames_SayWhatIsWrong(string? name, string problem)
    {
        Assert.Equal(problem, ContainerNames.Problem(name));
        Assert.False(ContainerNames.IsValid(name));
    }
}
