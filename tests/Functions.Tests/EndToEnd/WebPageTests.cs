using System.Net;
using OpenQA.Selenium;
using OpenQA.Selenium.Support.UI;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// The page the app serves (<c>/api/ui</c>), in headless Chromium against the app under the real Functions host: "Try
/// it" classifies a picked image and shows the bars, the version, the out-of-distribution verdict and where the model looked; uploads the
/// model is unsure about are queued by the blob trigger, "Review" shows them to the signed-in reviewer, one click labels
/// an image with the suggested label or another one (it leaves the queue and waits for approval, outside the training
/// container), and an Approver's click adds it to the training container. The browser is signed in as App Service
/// authentication would sign it in: the <c>x-ms-client-principal</c> header on every request (the host's App Service
/// authentication passes it through). The key the page was opened with leaves the address at once.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class WebPageTests(ServingModelFixture model, FunctionsHostFixture host) : IClassFixture<FunctionsHostFixture>, IDisposable
{
    private readonly string scratch = Directory.CreateTempSubdirectory("page-test-").FullName;

    [BrowserFact]
    public async Task Page_TryItReviewAndApprove_ClassifiesLabelsAndApprovesTheQueueIntoTrainingData()
    {
        await host.EnsureStartedAsync(model, model.OodFolder);
        // The page is protected like the API: no key, no page.
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Http.GetAsync(host.Url("api/ui"))).StatusCode);

        // A multi-label model beside the two multi-class ones (the sigmoid ColourModel: red 0.5, green 0.5, blue 0.99).
        const string multiLabel = "page-multilabel";
        await new ModelCore.Storage.ModelStore(host.Store.Container, multiLabel).PublishAsync(model.MultiLabelFolder, version: "p1");

        // Uploads: a red square (confident, in distribution) and two emoji, which are nothing like the red, green and
        // blue squares the model was fitted on.
        var emoji = TestAssets.SampleEmoji(2);
        await host.Images.GetBlobClient("uploads/red.png").UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("red", seed: 950)));
        for (var i = 0; i < emoji.Count; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1.1)); // the polling trigger scans by Last-Modified, to the second
            await host.Images.GetBlobClient($"uploads/emoji-{i}.png").UploadAsync(BinaryData.FromBytes(await File.ReadAllBytesAsync(emoji[i])));
        }
        var queue = new ReviewQueue(host.Review, new ReviewSettings { Container = host.Review.Name });
        var queued = await WaitForQueueAsync(queue, 2);
        Assert.Equal(["uploads/emoji-0.png", "uploads/emoji-1.png"], queued.Select(q => q.Item.Image));
        Assert.All(queued, q => Assert.Contains(ReviewReasons.OutOfDistribution, q.Item.Reasons));

        using var browser = new Browser();
        browser.Driver.ExecuteCdpCommand("Network.enable", []);
        browser.Driver.ExecuteCdpCommand("Network.setExtraHTTPHeaders", new Dictionary<string, object?>
        {
            ["headers"] = new Dictionary<string, object?> { [Services.ReviewerIdentity.PrincipalHeader] = ReviewScene.Approver },
        });
        browser.Driver.Navigate().GoToUrl(host.Url($"api/ui?code={FunctionsHostFixture.FunctionKey}"));
        // The key is read, then taken out of the address (history.replaceState), so the browser's history never keeps it.
        browser.WaitFor(d => !d.Url.Contains("code=", StringComparison.Ordinal), "the address without the key");
        Assert.Equal(host.Url("api/ui").ToString(), browser.Driver.Url);

        // Try it: an in-distribution red square, then an emoji.
        var red = Path.Combine(scratch, "red.png");
        await File.WriteAllBytesAsync(red, ServingModelFixture.Image("red", seed: 951));
        Pick(browser, red);
        browser.WaitFor(d => d.FindElement(By.Id("version")).Text.Contains("v1", StringComparison.Ordinal), "the model version");
        Assert.Equal("red", browser.Driver.FindElement(By.CssSelector("#bars .bar-row")).GetDomAttribute("data-label"));
        Assert.Equal(3, browser.Driver.FindElements(By.CssSelector("#bars .bar-row")).Count);
        Assert.StartsWith("In distribution (score", browser.Driver.FindElement(By.Id("ood")).Text, StringComparison.Ordinal);
        Assert.StartsWith("red (", browser.Driver.FindElement(By.Id("decision")).Text, StringComparison.Ordinal);
        // Where it looked: the activation map of the top label over the model's view, asked for by default.
        browser.WaitFor(d => d.FindElement(By.Id("overlay")).GetDomProperty("src")?.StartsWith("data:image/jpeg;base64,", StringComparison.Ordinal) == true, "the activation map overlay");
        Assert.StartsWith("Where the model found red:", browser.Driver.FindElement(By.Id("explain-caption")).Text, StringComparison.Ordinal);
        Pick(browser, emoji[0]);
        browser.WaitFor(d => d.FindElement(By.Id("ood")).Text.StartsWith("Out of distribution", StringComparison.Ordinal), "the out-of-distribution verdict");
        Assert.StartsWith("unknown (", browser.Driver.FindElement(By.Id("decision")).Text, StringComparison.Ordinal);
        // The model chooser lists the published models (GET /api/models); the named one answers from its own route
        // (its labels are reversed, so a red square is "blue"), then the default again.
        var named = FunctionsHostFixture.SecondModel;
        var chooser = new SelectElement(browser.WaitFor(d => d.FindElements(By.CssSelector($"#model-choice option[value='{named}']")).Count == 1 ? d.FindElement(By.Id("model-choice")) : null, "the model chooser"));
        chooser.SelectByValue(named);
        Pick(browser, red);
        browser.WaitFor(d => d.FindElement(By.Id("version")).Text == $"Model {named}, version s1", "the named model's answer");
        Assert.Equal("blue", browser.Driver.FindElement(By.CssSelector("#bars .bar-row")).GetDomAttribute("data-label"));
        // The multi-label model's answer lists the labels at or above their own thresholds: magenta is red, and not blue
        // (its probability is over red's threshold but under its own 0.99), though blue's bar is the longest.
        chooser.SelectByValue(multiLabel);
        var magenta = Path.Combine(scratch, "magenta.png");
        await File.WriteAllBytesAsync(magenta, ServingModelFixture.Magenta());
        Pick(browser, magenta);
        browser.WaitFor(d => d.FindElement(By.Id("version")).Text == $"Model {multiLabel}, version p1", "the multi-label model's answer");
        Assert.StartsWith("labels: red (", browser.Driver.FindElement(By.Id("decision")).Text, StringComparison.Ordinal);
        Assert.Equal([("blue", "false"), ("red", "true"), ("green", "false")], browser.Driver.FindElements(By.CssSelector("#bars .bar-row"))
            .Select(r => (r.GetDomAttribute("data-label"), r.GetDomAttribute("data-chosen"))));
        chooser.SelectByValue("");
        Pick(browser, red);
        browser.WaitFor(d => d.FindElement(By.Id("version")).Text == "Model version v1", "the default model's answer again");
        Assert.Equal("red", browser.Driver.FindElement(By.CssSelector("#bars .bar-row")).GetDomAttribute("data-label"));
        browser.Screenshot("page-try.png");

        // Review: both queued emoji, with thumbnails, for the signed-in reviewer; confirm the first, give the second another label.
        browser.Driver.FindElement(By.Id("tab-review")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("who-name")).Text == "Abel Approver", "who is signed in");
        Assert.Contains("(Reviewer, Approver)", browser.Driver.FindElement(By.Id("who")).Text, StringComparison.Ordinal);
        var cards = browser.WaitFor(d => d.FindElements(By.CssSelector(".review-card")) is { Count: 2 } found ? found : null, "two review cards");
        browser.WaitFor(d => d.FindElements(By.CssSelector(".review-card img")).All(i => i.GetDomProperty("src")?.StartsWith("blob:", StringComparison.Ordinal) == true), "the thumbnails");
        var first = queued[0].Item;
        var firstCard = cards.Single(c => c.GetDomAttribute("data-image") == first.Image);
        firstCard.FindElement(By.CssSelector(".confirm")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("status")).Text.Contains($"labelled {first.SuggestedLabel}", StringComparison.Ordinal), "the confirmation");
        var second = queued[1].Item;
        var other = ServingModelFixture.Labels.First(l => l != second.SuggestedLabel);
        var secondCard = browser.Driver.FindElements(By.CssSelector(".review-card")).Single();
        new SelectElement(secondCard.FindElement(By.CssSelector("select.other"))).SelectByValue(other);
        browser.WaitFor(d => d.FindElement(By.Id("status")).Text.Contains($"labelled {other}, waiting for an Approver", StringComparison.Ordinal), "the second label");
        Assert.Empty(browser.Driver.FindElements(By.CssSelector(".review-card")));

        // Labelled, out of the queue, and not training data yet: both wait for approval.
        Assert.Empty(await queue.ListAsync().ToListAsync());
        Assert.True(!(await host.Training.ExistsAsync()).Value || await host.Training.GetBlobsAsync().CountAsync() == 0, "the training container is untouched");
        var staged = browser.WaitFor(d => d.FindElements(By.CssSelector(".staged-card")) is { Count: 2 } found ? found : null, "two labels waiting for approval");
        browser.WaitFor(d => d.FindElements(By.CssSelector(".staged-card img")).All(i => i.GetDomProperty("src")?.StartsWith("blob:", StringComparison.Ordinal) == true), "the staged thumbnails");
        browser.Screenshot("page-review.png");
        foreach (var image in new[] { first.Image, second.Image })
        {
            browser.Driver.FindElements(By.CssSelector(".staged-card")).Single(c => c.GetDomAttribute("data-image") == image).FindElement(By.CssSelector(".approve")).Click();
            browser.WaitFor(d => d.FindElement(By.Id("status")).Text.StartsWith($"{image}: approved into the training data", StringComparison.Ordinal), $"the approval of {image}");
        }
        Assert.Empty(browser.Driver.FindElements(By.CssSelector(".staged-card")));

        // Approved: the images are in the training container under the chosen labels, the bytes that were labelled.
        Assert.True((await host.Training.GetBlobClient($"{first.SuggestedLabel}/uploads_emoji-0.png").ExistsAsync()).Value);
        Assert.True((await host.Training.GetBlobClient($"{other}/uploads_emoji-1.png").ExistsAsync()).Value);
        Assert.Equal(await File.ReadAllBytesAsync(emoji[1]), (await host.Training.GetBlobClient($"{other}/uploads_emoji-1.png").DownloadContentAsync()).Value.Content.ToArray());

        // A multi-label model's upload (magenta: red and blue within the review margin): its card offers a tick per class, red
        // ticked as its prediction listed it; the reviewer ticks blue too, and the approval writes both into labels.csv.
        var upload = $"{multiLabel}/magenta.png";
        await host.Images.GetBlobClient(upload).UploadAsync(BinaryData.FromBytes(ServingModelFixture.Magenta()));
        Assert.Equal([upload], (await WaitForQueueAsync(queue, 1)).Select(q => q.Item.Image));
        browser.Driver.FindElement(By.Id("tab-try")).Click();
        browser.Driver.FindElement(By.Id("tab-review")).Click();
        var ticks = browser.WaitFor(d => d.FindElements(By.CssSelector(".review-card .ticks input")) is { Count: 3 } found ? found : null, "the multi-label card's ticks");
        Assert.Equal([("red", true), ("green", false), ("blue", false)], ticks.Select(t => (t.GetDomAttribute("value"), t.Selected)));
        ticks.Single(t => t.GetDomAttribute("value") == "blue").Click();
        browser.Driver.FindElement(By.CssSelector(".review-card .save-labels")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("status")).Text.Contains("labelled blue, red, waiting for an Approver", StringComparison.Ordinal), "the multi-label labels");
        var multiStaged = browser.WaitFor(d => d.FindElements(By.CssSelector(".staged-card")) is { Count: 1 } found ? found[0] : null, "the multi-label staged card");
        Assert.Contains("labels: blue, red", multiStaged.Text, StringComparison.Ordinal);
        Assert.Contains("suggested red; by Abel Approver", multiStaged.Text, StringComparison.Ordinal);
        multiStaged.FindElement(By.CssSelector(".approve")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("status")).Text.StartsWith($"{upload}: approved into the training data as blue, red", StringComparison.Ordinal), "the multi-label approval");
        var namedTraining = Azure.Storage.Blobs.Specialized.SpecializedBlobExtensions.GetParentBlobServiceClient(host.Training).GetBlobContainerClient(ModelCore.Review.ReviewTrainingData.DefaultNamedContainer);
        var csv = (await namedTraining.GetBlobClient($"{multiLabel}/labels.csv").DownloadContentAsync()).Value.Content.ToString();
        Assert.Contains("\npage-multilabel_magenta.png,blue;red\n", csv, StringComparison.Ordinal);
    }

    [BrowserFact]
    public async Task Page_WithoutASignIn_OffersTheSignIn_AndShowsNoQueue()
    {
        await host.EnsureStartedAsync(model, model.OodFolder);
        using var browser = new Browser();
        browser.Driver.Navigate().GoToUrl(host.Url($"api/ui?code={FunctionsHostFixture.FunctionKey}"));
        browser.Driver.FindElement(By.Id("tab-review")).Click();

        var signIn = browser.WaitFor(d => d.FindElement(By.Id("sign-in")), "the sign-in link");

        Assert.Equal("/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fui", signIn.GetDomAttribute("href"));
        Assert.Empty(browser.Driver.FindElements(By.CssSelector(".review-card")));
        Assert.True(browser.Driver.FindElement(By.Id("approvals")).GetDomProperty("hidden") == "True"
            || !browser.Driver.FindElement(By.Id("approvals")).Displayed);
    }

    public void Dispose() => Directory.Delete(scratch, recursive: true);

    private static void Pick(Browser browser, string file)
    {
        var input = browser.Driver.FindElement(By.Id("file"));
        browser.Driver.ExecuteScript("arguments[0].hidden = false; arguments[0].value = '';", input);
        input.SendKeys(file);
    }

    private static async Task<List<QueuedReview>> WaitForQueueAsync(ReviewQueue queue, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var items = await queue.ListAsync().ToListAsync();
            if (items.Count >= count || DateTime.UtcNow > deadline)
            {
                return items;
            }
            await Task.Delay(500);
        }
    }
}
