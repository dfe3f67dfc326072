using System.Text;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using ServerlessClassifier.Functions.Functions;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The review API's label rule is the training data's (<c>TrainingLayout</c>): the names of the split folders, <c>train</c>
/// and <c>val</c>, are refused before anything is written, since two labels of those names would make the next training
/// run treat the training container as split and ignore every other label folder.
/// </summary>
public sealed class ReviewLabelTests
{
    [Theory]
    [InlineData("train")]
    [InlineData("val")]
    [InlineData("Val")]
    [InlineData(".hidden")]
    public async Task Label_ThatCannotBeAClassFolder_IsA400_AndNothingIsWritten(string label)
    {
        await using var host = await TestHost.StartAsync();
        var body = Encoding.UTF8.GetBytes($$"""{ "image": "a.png", "imageVersion": "0x1", "label": "{{label}}" }""");
        var result = await host.Function<Review>().Label(TestHost.HttpContext(body, contentType: "application/json").Request, CancellationToken.None);

        var answer = Assert.IsAssignableFrom<IStatusCodeActionResult>(result);
        Assert.Equal(400, answer.StatusCode);
        var problem = Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(result).Value);
        Assert.Equal("InvalidLabel", problem.Extensions["code"]?.ToString());
        Assert.StartsWith("That label cannot be used: it ", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Label_ThatCanBeAClassFolder_GoesOnToTheQueue_WhichDoesNotHoldThisImage()
    {
        // The control: the same request with an ordinary label passes the rule and is answered by the queue (409: not queued).
        await using var host = await TestHost.StartAsync();
        var body = Encoding.UTF8.GetBytes("""{ "image": "a.png", "imageVersion": "0x1", "label": "trains" }""");

        var result = await host.Function<Review>().Label(TestHost.HttpContext(body, contentType: "application/json").Request, CancellationToken.None);

        Assert.Equal(409, Assert.IsAssignableFrom<IStatusCodeActionResult>(result).StatusCode);
    }
}
