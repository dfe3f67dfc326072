using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Review thumbnails go through the app's decoder and decode budget, at reduced JPEG scale, and are made once per
/// image version: the budget's own counters show what was decoded.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewThumbnailTests(ServingModelFixture model)
{
    [Fact]
    public async Task Thumbnail_Of12MegapixelJpeg_IsDecodedAtReducedScale_AndOncePerVersion()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var budget = scene.Host.Get<DecodeBudget>();
        var review = scene.Host.Get<ReviewService>();
        await scene.QueueAsync("thumbs/photo.jpg", content: Jpeg(4000, 3000));
        var (grants, granted) = (budget.Grants, budget.GrantedBytes);

        var first = await review.ThumbnailAsync("thumbs/photo.jpg", CancellationToken.None);

        Assert.NotNull(first);
        using (var image = Image.Load<Rgb24>(first))
        {
            Assert.Equal((160, 120), (image.Width, image.Height));
        }
        Assert.Equal(grants + 1, budget.Grants);
        Assert.Equal(500L * 375 * 11, budget.GrantedBytes - granted); // 1/8 scale (500x375), not 4000x3000

        var second = await review.ThumbnailAsync("thumbs/photo.jpg", CancellationToken.None);

        Assert.Equal(first, second);
        Assert.Equal(grants + 1, budget.Grants); // not decoded again

        // A new version of the image is queued again and gets a thumbnail of its own.
        await scene.Queue.Container.DeleteBlobIfExistsAsync(ReviewQueue.ItemBlobName("thumbs/photo.jpg"));
        await scene.QueueAsync("thumbs/photo.jpg", content: Jpeg(4000, 3000, seed: 1));
        var third = await review.ThumbnailAsync("thumbs/photo.jpg", CancellationToken.None);
        Assert.NotNull(third);
        Assert.Equal(grants + 2, budget.Grants);
    }

    private static byte[] Jpeg(int width, int height, int seed = 0)
    {
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)(seed * 90));
                }
            }
        });
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }
}
