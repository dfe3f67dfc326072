using System.Buffers;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Azure Storage's rule for container names, the one check of every container name the app's settings and the
/// CLI's arguments give: 3 to 63 characters, lower-case letters, digits and hyphens, starting and ending with a
/// letter or digit, never two hyphens in a row. Queue names follow the same rule.
/// </summary>
public static class ContainerNames
{
    public const int MinLength = 3;

    public const int MaxLength = 63;

    private static readonly SearchValues<char> Allowed = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-");

    public static bool IsValid(string? name) => Problem(name) is null;

    /// <summary>What is wrong with <paramref name="name"/> as a container name (one clause that names it), or null when it is valid.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "the container name is empty";
        }
        if (name.Length is < MinLength or > MaxLength)
        {
            return $"container name '{name}' has {name.Length} characters; it needs {MinLength} to {MaxLength}";
        }
        var bad = name.AsSpan().IndexOfAnyExcept(Allowed);
        if (bad >= 0)
        {
            return $"container name '{name}' has '{name[bad]}': only lower-case letters, digits and hyphens are allowed";
        }
        if (name[0] == '-' || name[^1] == '-')
        {
            return $"container name '{name}' {(name[0] == '-' ? "starts" : "ends")} with a hyphen; it must start and end with a letter or digit";
        }
        if (name.Contains("--", StringComparison.Ordinal))
        {
            return $"container name '{name}' has two hyphens in a row";
        }
        return null;
    }
}
