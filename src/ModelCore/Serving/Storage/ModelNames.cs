namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Names of the models one store holds (docs/architecture.md, "Storage contract"). The <see cref="Default"/> model keeps
/// the layout a store always had (<c>&lt;version&gt;/...</c> and <c>current.json</c> at the container's root), so an
/// existing store serves as the default model without a migration; every other model lives under its name
/// (<c>&lt;name&gt;/&lt;version&gt;/...</c>, <c>&lt;name&gt;/current.json</c>).
/// </summary>
public static class ModelNames
{
    public const string Default = "default";

    public const int MaxLength = 32;

    /// <summary>Whether a string can name a model: 1-32 lowercase ASCII letters, digits or '-', starting with a letter, not ending with '-'.</summary>
    public static bool IsValid(string? name) => Problem(name) is null;

    /// <summary>Throws an <see cref="ArgumentException"/> that says what is wrong with a model name.</summary>
    public static string Validate(string? name, string paramName = "model")
    {
        if (Problem(name) is { } problem)
        {
            throw new ArgumentException(problem, paramName);
        }
        return name!;
    }

    /// <summary>What is wrong with a model name, or null when it is valid. Says nothing but the name (no storage location).</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "A model name is required.";
        }
        var shown = name.Length > 40 ? name[..40] + "..." : name;
        if (name.Length > MaxLength)
        {
            return $"Model name \"{shown}\" is {name.Length} characters long; at most {MaxLength} are allowed.";
        }
        if (!char.IsAsciiLetterLower(name[0]))
        {
            return $"Model name \"{shown}\" must start with a lowercase letter (a-z).";
        }
        if (name.FirstOrDefault(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')) is var bad and not '\0')
        {
            return $"Model name \"{shown}\" contains '{(char.IsControl(bad) ? '?' : bad)}': only lowercase letters, digits and '-' are allowed.";
        }
        if (name.EndsWith('-'))
        {
            return $"Model name \"{shown}\" must not end with '-'.";
        }
        return null;
    }

    /// <summary>The blob-name prefix of a model's files in the models container: empty for the default model.</summary>
    public static string Prefix(string name) => Validate(name) == Default ? "" : name + "/";
}
