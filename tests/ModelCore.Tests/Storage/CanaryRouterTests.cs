using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Tests.Storage;

public sealed class CanaryRouterTests
{
    [Fact]
    public void TenPercentCanary_Gets5To15PercentOf1000DistinctNames_AndANameAlwaysTheSameVersion()
    {
        var canary = new CanaryRelease("v2", 10);
        var names = Enumerable.Range(0, 1000).Select(i => $"uploads/2026-12-06/camera-{i % 7}/IMG_{i:D5}.jpg").ToList();

        var chosen = names.Count(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), canary));

        Assert.InRange(chosen, 50, 150);
        Assert.All(names, n => Assert.Equal(CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), canary), CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(new string(n.ToCharArray())), canary)));
    }

    [Fact]
    public void RaisingTheShare_OnlyMovesMoreNamesToTheCanary()
    {
        var names = Enumerable.Range(0, 1000).Select(i => $"n{i}.png").ToList();
        var at10 = names.Where(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), new CanaryRelease("v2", 10))).ToHashSet();
        var at50 = names.Where(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), new CanaryRelease("v2", 50))).ToHashSet();

        Assert.Subset(at50, at10);
        Assert.InRange(at50.Count, 400, 600);
        Assert.False(CanaryRouter.ChoosesCanary(0, null));
    }
}
