using System.Buffers.Binary;

namespace ServerlessClassifier.ModelCore.Runtime;

/// <summary>
/// Makes TorchSharp's <c>libLibTorchSharp.so</c> loadable where the system libstdc++ is GCC 12's
/// (Debian 12 and many container base images: up to GLIBCXX_3.4.30).
/// </summary>
/// <remarks>
/// TorchSharp 0.107.0's native library was built with GCC 13 and declares a need for
/// <c>GLIBCXX_3.4.32</c> for a single symbol, <c>std::ios_base_library_init</c>, which no relocation
/// uses. Marking that one version need weak (VER_FLG_WEAK in <c>.gnu.version_r</c>) turns the loader's
/// hard failure into a warning, and nothing else changes. Only that version is ever weakened: any other
/// missing version would be a real unresolved symbol, so it is reported, not hidden.
/// </remarks>
public static class LibStdCxxPatch
{
    public const string Version = "GLIBCXX_3.4.32";
    public const string LibStdCxx = "libstdc++.so.6";

    /// <summary>The needs of <paramref name="library"/> on libstdc++ that <paramref name="available"/> does not define and that are not already weak.</summary>
    public static IReadOnlyList<ElfVersionNeed> MissingNeeds(string library, IReadOnlySet<string> available) =>
        [.. ElfVersionTables.ReadNeeds(library).Where(n => n.File == LibStdCxx && !n.IsWeak && !available.Contains(n.Name))];

    /// <summary>
    /// Sets VER_FLG_WEAK on the <see cref="Version"/> need of the file at <paramref name="path"/>, in place.
    /// Idempotent: a second call finds the flag set and writes nothing. Returns whether it wrote.
    /// </summary>
    public static bool Apply(string path)
    {
        var need = ElfVersionTables.ReadNeeds(path).SingleOrDefault(n => n.File == LibStdCxx && n.Name == Version)
            ?? throw new InvalidOperationException($"{path} has no {Version} need on {LibStdCxx}; nothing to patch.");
        if (need.IsWeak)
        {
            return false;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        Span<byte> flags = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(flags, (ushort)(need.Flags | ElfVersionTables.WeakFlag));
        stream.Position = need.FlagsOffset;
        stream.Write(flags);
        return true;
    }
}
