using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using ServerlessClassifier.ModelCore.Imaging;
using ImagingResizeMode = ServerlessClassifier.ModelCore.Imaging.ResizeMode;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

public sealed class ImagePreprocessorTests
{
    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    [Theory]
    [InlineData(640, 480, 341, 256)] // int(256 * 640 / 480) = int(341.33)
    [InlineData(480, 640, 256, 341)]
    [InlineData(500, 500, 256, 256)]
    [InlineData(333, 500, 256, 384)] // int(384.38)
    [InlineData(1, 1, 256, 256)]
    public void ResizedSize_FollowsTorchvision(int width, int height, int expectedWidth, int expectedHeight)
    {
        var size = ImagePreprocessor.ResizedSize(width, height, PreprocessingConfig.TorchVision);

        Assert.Equal((expectedWidth, expectedHeight), size);
    }

    [Theory]
    [InlineData(256, 256, 16, 16)]
    [InlineData(257, 257, 16, 16)] // round(16.5) = 16: Python rounds half to even
    [InlineData(259, 259, 18, 18)] // round(17.5) = 18
    [InlineData(341, 256, 58, 16)] // round(58.5) = 58
    public void CropOffset_RoundsHalfToEven(int width, int height, int expectedLeft, int expectedTop)
    {
        Assert.Equal((expectedLeft, expectedTop), ImagePreprocessor.CropOffset(width, height, 224));
    }

    [Theory]
    [InlineData(9, 6, 2, 1)] // crop left round(2.5) = 2, top 1
    [InlineData(6, 9, 1, 2)]
    public void Preprocess_ShorterSideThenCenterCrop_ExactValues(int width, int height, int left, int top)
    {
        // ResizeSize equals the shorter side, so no resampling: every output value is computable exactly.
        var config = new PreprocessingConfig { InputSize = 4, ResizeSize = 6 };
        using var image = Coded(width, height);

        var output = new ImagePreprocessor(config).Preprocess(image);

        Assert.Equal(3 * 4 * 4, output.Length);
        float scale = 1f / 255f;
        for (int y = 0; y < 4; y++)
        {
            for (int x = 0; x < 4; x++)
            {
                var p = image[x + left, y + top];
                Assert.Equal(((p.R * scale) - ImageNetMean[0]) / ImageNetStd[0], output[Index(0, x, y, 4)]);
                Assert.Equal(((p.G * scale) - ImageNetMean[1]) / ImageNetStd[1], output[Index(1, x, y, 4)]);
                Assert.Equal(((p.B * scale) - ImageNetMean[2]) / ImageNetStd[2], output[Index(2, x, y, 4)]);
            }
        }

        // One value spelled out: output pixel (0,0) is source (left, top); R = 20 * left + 5.
        Assert.Equal((((20 * left) + 5) * scale - 0.485f) / 0.229f, output[0]);
    }

    [Fact]
    public void Preprocess_BgrWithMeanImage_ExactValues()
    {
        var meanImage = Enumerable.Range(0, 3 * 4 * 4).Select(i => i * 0.5f).ToArray();
        var config = new PreprocessingConfig
        {
            InputSize = 4,
            ResizeSize = 6,
            ChannelOrder = ChannelOrder.Bgr,
            Scale = 1f,
            MeanImageFile = "mean.bin",
        };
        using var image = Coded(9, 6);

        var output = new ImagePreprocessor(config, meanImage).Preprocess(image);

        for (int y = 0; y < 4; y++)
        {
            for (int x = 0; x < 4; x++)
            {
                var p = image[x + 2, y + 1];
                Assert.Equal(p.B - meanImage[Index(0, x, y, 4)], output[Index(0, x, y, 4)]);
                Assert.Equal(p.G - meanImage[Index(1, x, y, 4)], output[Index(1, x, y, 4)]);
                Assert.Equal(p.R - meanImage[Index(2, x, y, 4)], output[Index(2, x, y, 4)]);
            }
        }
    }

    [Theory]
    [InlineData(Interpolation.Bilinear)]
    [InlineData(Interpolation.Bicubic)]
    public void Preprocess_StretchOfConstantImage_GivesConstantPlanes(Interpolation interpolation)
    {
        var config = new PreprocessingConfig { InputSize = 4, Resize = ImagingResizeMode.Stretch, Interpolation = interpolation };
        using var image = new Image<Rgb24>(10, 7, new Rgb24(100, 150, 200));

        var output = new ImagePreprocessor(config).Preprocess(image);

        float scale = 1f / 255f;
        Assert.All(output[..16], v => Assert.Equal(((100 * scale) - 0.485f) / 0.229f, v));
        Assert.All(output[16..32], v => Assert.Equal(((150 * scale) - 0.456f) / 0.224f, v));
        Assert.All(output[32..], v => Assert.Equal(((200 * scale) - 0.406f) / 0.225f, v));
    }

    [Theory]
    [InlineData(ImagingResizeMode.Stretch, Interpolation.Bilinear)]
    [InlineData(ImagingResizeMode.Stretch, Interpolation.Bicubic)]
    [InlineData(ImagingResizeMode.ShorterSideThenCenterCrop, Interpolation.Bilinear)]
    [InlineData(ImagingResizeMode.ShorterSideThenCenterCrop, Interpolation.Bicubic)]
    public void Preprocess_ResizesWithConfiguredFilterThenCrops(ImagingResizeMode mode, Interpolation interpolation)
    {
        // 64x48 -> shorter side 12 -> 16x12 -> centre 8x8 from (4, 2); or stretched to 8x8.
        var config = new PreprocessingConfig { InputSize = 8, ResizeSize = 12, Resize = mode, Interpolation = interpolation, Scale = 1f, Mean = [0f, 0f, 0f], Std = [1f, 1f, 1f] };
        using var image = Coded(64, 48);
        var sampler = interpolation == Interpolation.Bilinear ? KnownResamplers.Triangle : KnownResamplers.Bicubic;
        var (width, height, left, top) = mode == ImagingResizeMode.Stretch ? (8, 8, 0, 0) : (16, 12, 4, 2);
        using var expected = image.Clone(x => x.Resize(width, height, sampler));

        var output = new ImagePreprocessor(config).Preprocess(image);

        for (int y = 0; y < 8; y++)
        {
            for (int x = 0; x < 8; x++)
            {
                var p = expected[x + left, y + top];
                Assert.Equal((float)p.R, output[Index(0, x, y, 8)]);
                Assert.Equal((float)p.G, output[Index(1, x, y, 8)]);
                Assert.Equal((float)p.B, output[Index(2, x, y, 8)]);
            }
        }
    }

    [Fact]
    public void Preprocess_BilinearAndBicubicDiffer()
    {
        using var image = Coded(64, 48);
        var bilinear = new ImagePreprocessor(new PreprocessingConfig { InputSize = 8, ResizeSize = 12 }).Preprocess(image);
        var bicubic = new ImagePreprocessor(new PreprocessingConfig { InputSize = 8, ResizeSize = 12, Interpolation = Interpolation.Bicubic }).Preprocess(image);

        Assert.NotEqual(bilinear, bicubic);
    }

    [Fact]
    public void PreprocessBatch_FillsOneBuffer()
    {
        var preprocessor = new ImagePreprocessor(new PreprocessingConfig { InputSize = 16, ResizeSize = 20 });
        using var first = Coded(40, 30);
        using var second = new Image<Rgb24>(25, 50, new Rgb24(1, 2, 3));
        var batch = new float[2 * preprocessor.InputLength];

        preprocessor.PreprocessBatch([first, second], batch);

        Assert.Equal(preprocessor.Preprocess(first), batch[..preprocessor.InputLength]);
        Assert.Equal(preprocessor.Preprocess(second), batch[preprocessor.InputLength..]);
        Assert.Throws<ArgumentException>(() => preprocessor.PreprocessBatch([first, second], new float[batch.Length - 1]));
    }

    [Fact]
    public void Preprocess_OneByOneImage_FillsTheInput()
    {
        using var image = new Image<Rgb24>(1, 1, new Rgb24(30, 40, 200));

        var output = new ImagePreprocessor(PreprocessingConfig.TorchVision).Preprocess(image);

        Assert.Equal(3 * 224 * 224, output.Length);
        Assert.All(output[..(224 * 224)], v => Assert.Equal(((30 * (1f / 255f)) - 0.485f) / 0.229f, v));
    }

    [Fact]
    public void Preprocess_RejectsExtremeAspectRatio()
    {
        using var image = new Image<Rgb24>(1, 70_000);

        var e = Assert.Throws<ImageRejectedException>(() => new ImagePreprocessor(PreprocessingConfig.TorchVision).Preprocess(image));

        Assert.Equal(ImageErrorCode.ExtremeAspectRatio, e.Code);
        Assert.Contains("256x17920000", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_ChecksMeanImageAgainstConfig()
    {
        var withFile = new PreprocessingConfig { InputSize = 4, ResizeSize = 4, MeanImageFile = "mean.bin" };

        Assert.Throws<ArgumentException>(() => new ImagePreprocessor(withFile));
        Assert.Throws<ArgumentException>(() => new ImagePreprocessor(withFile, new float[47]));
        Assert.Throws<ArgumentException>(() => new ImagePreprocessor(PreprocessingConfig.TorchVision, new float[3 * 224 * 224]));
        Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessingConfig { InputSize = 224, ResizeSize = 200 }));
    }

    [Fact]
    public void MeanImage_ReadsLittleEndianChwFloats()
    {
        var bytes = new byte[3 * 2 * 2 * 4];
        for (int i = 0; i < 12; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), (i * 1.25f) - 3f);
        }

        var values = MeanImage.Read(new MemoryStream(bytes), inputSize: 2);

        Assert.Equal(Enumerable.Range(0, 12).Select(i => (i * 1.25f) - 3f), values);
        using var written = new MemoryStream();
        MeanImage.Write(written, values);
        Assert.Equal(bytes, written.ToArray());
        Assert.Throws<EndOfStreamException>(() => MeanImage.Read(new MemoryStream(bytes[..^4]), inputSize: 2));
        Assert.Throws<InvalidDataException>(() => MeanImage.Read(new MemoryStream([.. bytes, 0, 0, 0, 0]), inputSize: 2));
    }

    [Fact]
    public void MeanImage_ReadFileChecksLength()
    {
        string path = Path.Combine(Path.GetTempPath(), $"mean-{Guid.NewGuid():N}.bin");
        try
        {
            using (var file = File.Create(path))
            {
                MeanImage.Write(file, new float[3 * 3 * 3]);
            }

            Assert.Equal(27, MeanImage.ReadFile(path, 3).Length);
            Assert.Throws<InvalidDataException>(() => MeanImage.ReadFile(path, 4));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Every pixel different: R = 20x + 5, G = 30y + 7, B = x * y + 1 (all mod 256).</summary>
    private static Image<Rgb24> Coded(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                image[x, y] = new Rgb24((byte)((20 * x) + 5), (byte)((30 * y) + 7), (byte)((x * y) + 1));
            }
        }

        return image;
    }

    private static int Index(int channel, int x, int y, int size) => (channel * size * size) + (y * size) + x;
}
