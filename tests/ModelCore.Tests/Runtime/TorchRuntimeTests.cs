using System.Security.Cryptography;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Runtime;

[Collection(TorchTests.Collection)]
public sealed class TorchRuntimeTests
{
    private const string SystemLibTorchDirectory = "/usr/lib/x86_64-linux-gnu";

    private static TorchRuntimeInfo Runtime =>
        TorchRuntime.EnsureInitialized() ?? throw new InvalidOperationException("These tests cover Linux.");

    [Fact]
    public void Tensor_MatrixProduct_IsComputedByLibTorch()
    {
        _ = Runtime;
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var b = tensor(new float[] { 7, 8, 9, 10, 11, 12 }, 3, 2);
        var product = a.matmul(b);
        Assert.Equal(new long[] { 2, 2 }, product.shape);
        Assert.Equal(new float[] { 58, 64, 139, 154 }, product.data<float>().ToArray());
    }

    [Theory]
    [InlineData("resnet18", 512)]
    [InlineData("resnet50", 2048)]
    public void ResNet_ForwardPass_GivesFeaturesOfDeclaredWidth(string name, int features)
    {
        _ = Runtime;
        manual_seed(1);
        using var model = BackboneCatalog.Create(name);
        model.eval();
        using var noGrad = inference_mode();
        using var scope = NewDisposeScope();
        var output = model.forward(randn(2, 3, 64, 64));
        Assert.Equal(new long[] { 2, features }, output.shape);
        Assert.Equal(features, model.NumFeatures);
        Assert.True(output.isfinite().all().item<bool>(), "features must be finite");
        Assert.True(output.abs().sum().item<float>() > 0);
        Assert.False(output[0].allclose(output[1]), "different inputs must give different features");
    }

    [Fact]
    public void EnsureInitialized_CapsMallocArenasUnlessTheEnvironmentDoes()
    {
        _ = Runtime;
        // This test process runs on glibc (Debian): mallopt(M_ARENA_MAX) returns 1 there, unless the environment chose.
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(MallocArenas.Variable)))
        {
            Assert.Equal(MallocArenas.DefaultMax, MallocArenas.Applied);
            Assert.True(MallocArenas.Apply(), "a second call keeps the cap and says so");
        }
        else
        {
            Assert.Null(MallocArenas.Applied);
        }
    }

    [Fact]
    public void EnsureInitialized_PatchesOnlyWhenSystemLibStdCxxLacksTheVersion()
    {
        var info = Runtime;
        var original = Path.Combine(info.NativeDirectory, "libLibTorchSharp.so");
        var systemDefinitions = ElfVersionTables.ReadDefinitions(SystemLibStdCxxPath());
        var systemLacksVersion = !systemDefinitions.Contains(LibStdCxxPatch.Version);

        Assert.Equal(systemLacksVersion, info.Patched);
        Assert.Equal(systemLacksVersion, info.LibTorchSharpPath != original);

        // Where libstdc++ is new enough, nothing is missing, so nothing would be patched.
        var newEnough = new HashSet<string>(systemDefinitions) { LibStdCxxPatch.Version };
        Assert.Empty(LibStdCxxPatch.MissingNeeds(original, newEnough));
        // The package file itself is never modified.
        Assert.Contains(ElfVersionTables.ReadNeeds(original), n => n.Name == LibStdCxxPatch.Version && !n.IsWeak);
    }

    [Fact]
    public void Patch_IsIdempotentAndLeavesEveryOtherVersionNeedUntouched()
    {
        var original = Path.Combine(Runtime.NativeDirectory, "libLibTorchSharp.so");
        var copy = Path.Combine(Path.GetTempPath(), $"libLibTorchSharp-{Guid.NewGuid():N}.so");
        File.Copy(original, copy);
        try
        {
            var before = ElfVersionTables.ReadNeeds(copy);
            Assert.True(LibStdCxxPatch.Apply(copy));
            var after = ElfVersionTables.ReadNeeds(copy);
            var hashAfterFirst = SHA256.HashData(File.ReadAllBytes(copy));

            Assert.False(LibStdCxxPatch.Apply(copy));
            Assert.Equal(hashAfterFirst, SHA256.HashData(File.ReadAllBytes(copy)));

            Assert.Equal(before.Count, after.Count);
            Assert.True(before.Count > 10, "LibTorchSharp declares needs on libc, libm, libgcc and libstdc++");
            for (var i = 0; i < before.Count; i++)
            {
                var expected = before[i].Name == LibStdCxxPatch.Version
                    ? before[i] with { Flags = (ushort)(before[i].Flags | ElfVersionTables.WeakFlag) }
                    : before[i];
                Assert.Equal(expected, after[i]);
            }
            Assert.Single(after, n => n.IsWeak);

            // Exactly the one flags field changed in the whole file.
            var originalBytes = File.ReadAllBytes(original);
            var patchedBytes = File.ReadAllBytes(copy);
            var changed = Enumerable.Range(0, originalBytes.Length).Where(i => originalBytes[i] != patchedBytes[i]).ToList();
            var flagsOffset = before.Single(n => n.Name == LibStdCxxPatch.Version).FlagsOffset;
            Assert.NotEmpty(changed);
            Assert.All(changed, i => Assert.InRange(i, flagsOffset, flagsOffset + 1));
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public void SystemLibTorch_IsNeverLoaded_PackageNativesAre()
    {
        var info = Runtime;
        // The test script installs Debian's python3-torch, which puts libtorch 1.13 in the system path;
        // on a machine without it this still checks that the package's files are the ones mapped.
        using (var scope = NewDisposeScope())
        {
            Assert.Equal(6f, ones(2, 3).sum().item<float>());
        }
        var mapped = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6)
            .Select(parts => string.Join(' ', parts[5..]))
            .Where(path => Path.GetFileName(path) is var file && (file.StartsWith("libtorch", StringComparison.Ordinal) || file.StartsWith("libc10", StringComparison.Ordinal)))
            .Distinct()
            .ToList();
        Assert.Contains(Path.Combine(info.NativeDirectory, "libtorch_cpu.so"), mapped);
        Assert.Contains(Path.Combine(info.NativeDirectory, "libc10.so"), mapped);
        Assert.DoesNotContain(mapped, path => path.StartsWith(SystemLibTorchDirectory, StringComparison.Ordinal));
        if (Environment.GetEnvironmentVariable("CLASSIFIER_TEST_REQUIRE_SYSTEM_LIBTORCH") == "1")
        {
            Assert.True(File.Exists(Path.Combine(SystemLibTorchDirectory, "libtorch_cpu.so")),
                "the test script installs python3-torch so that this test runs with a system libtorch present");
        }
    }

    private static string SystemLibStdCxxPath() =>
        File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6)
            .Select(parts => string.Join(' ', parts[5..]))
            .First(path => Path.GetFileName(path).StartsWith("libstdc++.so", StringComparison.Ordinal));
}
